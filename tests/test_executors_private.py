"""LocalExecutor: output paths and the private filesystem view (private /tmp, overlays, emptyDir)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from chute.executors import mounts, sandbox
from chute.executors.base import SUCCEEDED
from tests.fixtures.executor import (
    ex,  # noqa: F401 - the module's executor
    run,
    spec,
    wait,
)

# ------------------------------------------------------------------ outputs and private view


def test_outputs_are_collected_and_missing_ones_absent(ex, tmp_path):
    r, s = run(
        ex,
        tmp_path,
        ["sh", "-c", "mkdir -p /tmp/d && echo v > /tmp/out.txt && echo f > /tmp/d/f"],
        private_paths=["/tmp/out.txt", "/tmp/d", "/tmp/missing"],
        output_paths=["/tmp/out.txt", "/tmp/d", "/tmp/missing"],
    )
    assert r.outcome == SUCCEEDED, r
    assert set(r.outputs) == {"/tmp/out.txt", "/tmp/d"}
    assert Path(r.outputs["/tmp/out.txt"]).read_text() == "v\n"
    assert Path(r.outputs["/tmp/d"], "f").read_text() == "f\n"
    assert Path(r.outputs["/tmp/out.txt"]).is_relative_to(s.step_dir)


@pytest.mark.skipif(not mounts.available(), reason="no mount namespaces here")
def test_two_concurrent_steps_get_their_own_tmp(ex, tmp_path):
    specs = [
        spec(
            tmp_path,
            ["sh", "-c", f"echo {v} > /tmp/out.txt; sleep 0.3; cat /tmp/out.txt"],
            name=f"s{v}",
            private_paths=["/tmp/out.txt"],
            output_paths=["/tmp/out.txt"],
        )
        for v in ("one", "two")
    ]
    handles = [ex.launch(s) for s in specs]
    results = [wait(ex, h) for h in handles]
    for v, r in zip(("one", "two"), results, strict=True):
        assert r.outcome == SUCCEEDED and r.result == v
        assert Path(r.outputs["/tmp/out.txt"]).read_text() == f"{v}\n"
    assert not Path("/tmp/out.txt").exists() or Path("/tmp/out.txt").read_text() not in (
        "one\n",
        "two\n",
    )


@pytest.mark.skipif(not mounts.available(), reason="no mount namespaces here")
def test_private_dirs_outside_tmp_and_input_files(ex, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("input-data")
    r, _s = run(
        ex,
        tmp_path,
        ["sh", "-c", "mkdir -p /workspace && cat /argo/inputs/in.txt > /workspace/out"],
        input_files={"/argo/inputs/in.txt": str(src)},
        private_paths=["/workspace/out"],
        output_paths=["/workspace/out"],
    )
    assert r.outcome == SUCCEEDED, r
    assert Path(r.outputs["/workspace/out"]).read_text() == "input-data"
    assert not Path("/workspace").exists() and not Path("/argo").exists()


@pytest.mark.skipif(not mounts.available(), reason="no mount namespaces here")
def test_host_paths_given_to_a_private_step_stay_visible(ex, tmp_path):
    # tmp_path is under /tmp, which the step sees privately; paths it is handed stay visible
    tool = tmp_path / "tool.sh"
    tool.write_text('#!/bin/sh\necho tool-ran > /tmp/out.txt\ncat "$DATA"\n')
    tool.chmod(0o755)
    data = tmp_path / "data.txt"
    data.write_text("data")
    r, _ = run(
        ex,
        tmp_path,
        [str(tool)],
        env={"DATA": str(data)},
        private_paths=["/tmp/out.txt"],
        output_paths=["/tmp/out.txt"],
    )
    assert r.outcome == SUCCEEDED, r
    assert r.result == "data"
    assert Path(r.outputs["/tmp/out.txt"]).read_text() == "tool-ran\n"


@pytest.mark.skipif(not mounts.available(), reason="no mount namespaces here")
def test_host_paths_inside_a_shell_string_stay_visible(ex, tmp_path):
    count = tmp_path / "sub" / "count"  # does not exist yet: reached through tmp_path
    script = f"echo ran >> {count.parent}/count && echo mine > /tmp/out.txt && cat /tmp/out.txt"
    (tmp_path / "sub").mkdir()
    r, _ = run(
        ex,
        tmp_path,
        ["sh", "-c", script],
        private_paths=["/tmp/out.txt"],
        output_paths=["/tmp/out.txt"],
    )
    assert r.outcome == SUCCEEDED and r.result == "mine"
    assert count.read_text() == "ran\n"
    assert Path(r.outputs["/tmp/out.txt"]).read_text() == "mine\n"


@pytest.mark.skipif(not mounts.available(), reason="no mount namespaces here")
def test_private_tmp_holds_only_what_the_step_wrote(ex, tmp_path):
    # the mount points for host paths bound back in are removed after the step
    r, s = run(
        ex,
        tmp_path,
        ["sh", "-c", "echo x > /tmp/out.txt"],
        private_paths=["/tmp/out.txt"],
        output_paths=["/tmp/out.txt"],
    )
    assert r.outcome == SUCCEEDED
    deadline = time.monotonic() + 5  # removed just after the result is written
    while sorted(os.listdir(s.step_dir / "root" / "tmp")) != ["out.txt"]:
        assert time.monotonic() < deadline, os.listdir(s.step_dir / "root" / "tmp")
        time.sleep(0.01)
    assert sorted(os.listdir(s.step_dir / "root")) == ["tmp"]


@pytest.mark.skipif(not mounts.available(), reason="no mount namespaces here")
def test_a_top_level_output_file(ex, tmp_path):
    # Argo's expression-tag example writes its output parameter to the file /output
    r, _ = run(
        ex,
        tmp_path,
        ["sh", "-c", "echo hello > /output"],
        private_paths=["/output"],
        output_paths=["/output"],
    )
    assert r.outcome == SUCCEEDED, r
    assert Path(r.outputs["/output"]).read_text() == "hello\n"
    assert not Path("/output").exists()
    r, _ = run(
        ex, tmp_path, ["true"], name="t2", private_paths=["/output"], output_paths=["/output"]
    )
    assert r.outcome == SUCCEEDED and r.outputs == {}  # never written: absent


def test_plan_without_namespaces_shares_paths_and_snapshots_outputs(tmp_path):
    out = tmp_path / "o.txt"
    plan = sandbox.plan_for(
        {"step_dir": str(tmp_path / "step"), "output_paths": [str(out), str(tmp_path / "no")]},
        {},
        ["true"],
        enabled=False,
    )
    assert not plan.enabled and plan.host_path(str(out)) == out
    out.write_text("v")
    got = plan.collect([str(out), str(tmp_path / "no")])
    assert list(got) == [str(out)]
    out.write_text("changed later by someone else")
    assert Path(got[str(out)]).read_text() == "v"  # a snapshot under step_dir/root


@pytest.mark.skipif(not mounts.available(), reason="no mount namespaces here")
def test_script_in_a_private_view_with_a_private_working_dir(ex, tmp_path):
    src = "import os\nopen('/tmp/out.txt', 'w').write(os.getcwd())\nprint('ok')\n"
    r, _ = run(
        ex,
        tmp_path,
        ["python"],
        script_source=src,
        working_dir="/tmp/work",
        private_paths=["/tmp/out.txt"],
        output_paths=["/tmp/out.txt"],
    )
    assert (r.outcome, r.result) == (SUCCEEDED, "ok"), r
    assert Path(r.outputs["/tmp/out.txt"]).read_text() == "/tmp/work"
    assert not Path("/tmp/work").exists()


@pytest.mark.skipif(not mounts.available(), reason="no mount namespaces here")
def test_private_view_behaves_like_an_image(ex, tmp_path):
    # the shapes of Argo's conditional-artifacts, global-outputs and map-reduce examples
    art = tmp_path / "art"
    art.write_text("input at /art")
    src = (
        "import os\n"
        "open('result.txt', 'w').write('relative')\n"  # cwd is / as in an image
        "os.mkdir('/mnt/out')\n"  # /mnt exists, /mnt/out does not
        "open('/mnt/out/part.json', 'w').write(open('/art').read())\n"
    )
    r, _ = run(
        ex,
        tmp_path,
        ["python"],
        script_source=src,
        input_files={"/art": str(art)},
        output_paths=["/result.txt", "/mnt/out/part.json"],
    )
    assert r.outcome == SUCCEEDED, r
    assert Path(r.outputs["/result.txt"]).read_text() == "relative"
    assert Path(r.outputs["/mnt/out/part.json"]).read_text() == "input at /art"


@pytest.mark.skipif(not mounts.available(), reason="no mount namespaces here")
def test_output_paths_are_not_pre_created(ex, tmp_path):
    # as in Argo's container (its emissary copies outputs out after the step): the step
    # finds no /mnt/out, /output or /workspace, makes them itself and may replace a file
    script = (
        "for p in /mnt/out /output /workspace; do [ ! -e $p ] || { echo has $p; exit 3; }; done"
        " && [ -d /mnt ] && [ -d /tmp ]"
        " && mkdir /mnt/out /workspace && echo m > /mnt/out/part.json"
        " && echo w > /workspace/w.txt"
        " && echo first > /output.tmp && mv /output.tmp /output"
    )
    outs = ["/mnt/out/part.json", "/output", "/workspace/w.txt", "/mnt/never"]
    r, s = run(ex, tmp_path, ["sh", "-c", script], output_paths=outs)
    assert r.outcome == SUCCEEDED, (r, (s.log_path.read_text()))
    assert set(r.outputs) == set(outs) - {"/mnt/never"}
    assert Path(r.outputs["/output"]).read_text() == "first\n"
    assert Path(r.outputs["/mnt/out/part.json"]).read_text() == "m\n"
    assert Path(r.outputs["/workspace/w.txt"]).read_text() == "w\n"
    assert not os.path.lexists("/output") and not os.path.lexists("/workspace")
    assert not os.path.lexists("/mnt/out")
    # an output that is a directory at a top-level path the step makes itself
    r, _ = run(ex, tmp_path, ["sh", "-c", "mkdir /output && echo f > /output/f"], name="d",
               output_paths=["/output"])
    assert r.outcome == SUCCEEDED, r
    assert Path(r.outputs["/output"], "f").read_text() == "f\n"


@pytest.mark.skipif(not mounts.available(), reason="no mount namespaces here")
@pytest.mark.parametrize("light", [True, False])
def test_empty_dir_volume_is_a_private_mount(ex, tmp_path, light):
    # Argo's volumes-emptydir greps /proc/mounts for the mount path; two steps at once
    # each get their own empty directory, and what they write there can be an output
    outs = ["/mnt/vol/x"] + ([] if light else ["/result.txt"])
    script = ("grep -q ' /mnt/vol ' /proc/mounts && [ -z \"$(ls -A /mnt/vol)\" ]"
              " && echo $0 > /mnt/vol/x && sleep 0.2 && cat /mnt/vol/x")
    handles = [ex.launch(spec(tmp_path, ["sh", "-c", script, f"v{i}"], name=f"v{i}",
                              volume_mounts=["/mnt/vol"], output_paths=outs))
               for i in range(2)]
    for i, h in enumerate(handles):
        r = wait(ex, h)
        assert (r.outcome, r.result) == (SUCCEEDED, f"v{i}"), r
        assert Path(r.outputs["/mnt/vol/x"]).read_text() == f"v{i}\n"
    assert not os.path.lexists("/mnt/vol")


@pytest.mark.skipif(not mounts.available(), reason="no mount namespaces here")
def test_private_paths_under_system_directories_use_an_overlay(ex, tmp_path):
    # Argo's arguments-artifacts puts an input at /usr/local/bin/kubectl: never on the host
    tag = uuid.uuid4().hex[:8]
    tool, out = f"/usr/local/bin/chute-tool-{tag}", f"/usr/local/share/chute-{tag}/out.txt"
    src = tmp_path / "tool"
    src.write_text("#!/bin/sh\necho tool-ok\n")
    src.chmod(0o755)
    script = f"mkdir -p {os.path.dirname(out)} && chute-tool-{tag} > {out} && ls /usr/local/bin >/dev/null"
    r, _ = run(ex, tmp_path, ["sh", "-c", script], input_files={tool: str(src)}, output_paths=[out])
    assert r.outcome == SUCCEEDED, r
    assert Path(r.outputs[out]).read_text() == "tool-ok\n"
    assert not os.path.lexists(tool) and not os.path.lexists(os.path.dirname(out))


@pytest.mark.skipif(not mounts.available(), reason="no mount namespaces here")
def test_overlay_paths_in_a_new_root(ex, tmp_path):
    # /output (absent on the host) makes the step's root step_dir/root, where the host's
    # /usr is bind-mounted: the overlay's writes must still stay off the host
    tag = uuid.uuid4().hex[:8]
    tool, out = f"/usr/local/bin/chute-tool-{tag}", f"/usr/local/share/chute-{tag}/out.txt"
    src = tmp_path / "tool"
    src.write_text("#!/bin/sh\necho tool-ok\n")
    src.chmod(0o755)
    script = (f"mkdir -p {os.path.dirname(out)} && chute-tool-{tag} > {out}"
              f" && chute-tool-{tag} > /output && [ \"$(pwd)\" = / ]")
    r, _ = run(ex, tmp_path, ["sh", "-c", script], input_files={tool: str(src)},
               output_paths=[out, "/output"])
    assert r.outcome == SUCCEEDED, r
    assert Path(r.outputs[out]).read_text() == Path(r.outputs["/output"]).read_text()
    assert Path(r.outputs["/output"]).read_text() == "tool-ok\n"
    assert not os.path.lexists(tool) and not os.path.lexists(os.path.dirname(out))
    assert not os.path.lexists("/output")
