# The README's two commands: `make run` (set up, run the main job) and `make test`
# (set up, run the whole test suite). Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup ui run test test-heavy bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,ml,postgres]'
	touch $(STAMP)

setup: $(STAMP) ui

## Build the web UI (ui/, npm + Vite) into chute/server/static.
UI_INDEX := chute/server/static/index.html
ui: $(UI_INDEX)

$(UI_INDEX): ui/package.json ui/package-lock.json ui/index.html ui/vite.config.js $(wildcard ui/src/*)
	cd ui && npm install --no-audit --no-fund --loglevel=error && npx vite build --logLevel warn

## Run the main job: the fraud-detection reference pipeline on the embedded defaults
## (SQLite and a local artifact directory under ~/.chute, or $$CHUTE_HOME).
run: setup
	$(BIN)/chute lint examples/hello-world.yaml
	$(BIN)/chute run examples/fraud_detection/pipeline.py

## Run the whole test suite (heavy trials stay behind CHUTE_HEAVY=1).
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

test-heavy: setup
	CHUTE_HEAVY=1 $(BIN)/python -m pytest -m heavy -q

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
