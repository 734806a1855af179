"""Throughput and memory of passing one large artifact through the artifact repository.

For each target (a local repository, and S3 through a moto server started here on
127.0.0.1) a fresh child process saves a SIZE file as an output artifact and loads it back
as an input artifact, as the engine does between two steps; the child reports the
throughput of each half and its own peak RSS (VmHWM), which must stay well under
300 MB whatever the size (issue 8 item 3).

    python bench/artifacts.py                      # 2 GiB, local and s3, archive none
    python bench/artifacts.py --size-mb 512 --archive tgz --targets local

moto keeps objects in its own memory and is much slower than MinIO or AWS; the S3 figures
are a lower bound and say nothing about chute's memory, which is the point.

Measured on the project machine (2 cores, ext4 without reflink; 2026-11-28):

    size     archive  target  put MB/s  get MB/s  peak RSS MB
    2 GiB    none     local     1014.6     912.1         24.9   (put = sha256 + hard link)
    2 GiB    none     s3          16.3     168.6        136.8   (moto-bound)
    1 GiB    none     s3          28.2     459.9        136.7
    512 MiB  tgz      local       15.8     196.5         27.4   (gzip level 6, random data)
    512 MiB  tgz      s3           9.5      13.6        136.2   (before one-GET downloads)
    2 GiB    tgz      local        6.0      69.5         27.3   (machine loaded: load avg 12)

tar+gzip costs CPU (Argo's default level 6 on incompressible data); for large binary
artifacts ``archive: {none: {}}`` or ``archive: {tar: {compressionLevel: 0}}`` is the
fast path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, os, resource, sys, time
def peak_mb():
    # VmHWM is this process image's own high-water mark; ru_maxrss would also count the
    # forking parent's memory, which Linux carries across exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
from pathlib import Path
from chute.artifacts import ArtifactRepository
from chute.secrets import SecretStore
cfg, src, dest, archive = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
repo = (ArtifactRepository.from_argo(cfg, secrets=SecretStore()) if "s3" in cfg
        else ArtifactRepository.local(cfg["local"]["path"]))
spec = {"none": {}} if archive == "none" else None
t0 = time.perf_counter()
rec = repo.save(src, name="big", workflow_uid="00000000-0000-0000-0000-000000000001",
                node_id="producer", archive=spec)
t1 = time.perf_counter()
repo.load(rec, dest)
t2 = time.perf_counter()
assert dest.stat().st_size == src.stat().st_size
print(json.dumps({"put_s": t1 - t0, "get_s": t2 - t1, "stored": rec.size,
                  "peak_rss_mb": peak_mb()}))
"""


def make_source(path: Path, size_mb: int) -> None:
    """Write ``size_mb`` MiB of incompressible data, 1 MiB at a time."""
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        f.writelines(block[i % 7:] + block[: i % 7] for i in range(size_mb))  # rotate: no two MiB blocks equal


def run_child(cfg: dict, src: Path, dest: Path, archive: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg), str(src), str(dest),
                          archive], env=env, capture_output=True, text=True, cwd=REPO, check=False)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=2048, help="artifact size in MiB")
    ap.add_argument("--targets", default="local,s3", help="comma list of local, s3")
    ap.add_argument("--archive", choices=["none", "tgz"], default="none",
                    help="none: stored as is; tgz: Argo's default tar+gzip")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="chute-bench-", dir=os.environ.get("TMPDIR")) as d:
        d = Path(d)
        home = d / "home"
        env = {**os.environ, "CHUTE_HOME": str(home), "PYTHONPATH": str(REPO)}
        src = d / "big.bin"
        t = time.perf_counter()
        make_source(src, args.size_mb)
        print(f"source: {args.size_mb} MiB written in {time.perf_counter() - t:.1f}s; "
              f"archive={args.archive}")
        print(f"{'target':<8} {'put MB/s':>9} {'get MB/s':>9} {'stored MiB':>11} "
              f"{'peak RSS MB':>12}")
        for target in [t.strip() for t in args.targets.split(",") if t.strip()]:
            proc = None
            if target == "local":
                cfg = {"local": {"path": str(d / "store")}}
            elif target == "s3":
                from tests.fixtures.s3 import start_moto

                proc, srv = start_moto()
                bucket = srv.new_bucket()
                os.environ["CHUTE_HOME"] = str(home)
                from chute.secrets import SecretStore

                SecretStore(home / "secrets").create(
                    "bench-s3", {"a": srv.access_key, "s": srv.secret_key}, overwrite=True)
                cfg = {"s3": {"endpoint": srv.endpoint, "bucket": bucket, "insecure": True,
                              "accessKeySecret": {"name": "bench-s3", "key": "a"},
                              "secretKeySecret": {"name": "bench-s3", "key": "s"}}}
            else:
                raise SystemExit(f"unknown target {target!r}")
            try:
                r = run_child(cfg, src, d / f"in-{target}", args.archive, env)
            finally:
                if proc is not None:
                    proc.terminate()
                    proc.wait(30)
            mb = args.size_mb * 1.048576
            print(f"{target:<8} {mb / r['put_s']:>9.1f} {mb / r['get_s']:>9.1f} "
                  f"{r['stored'] / 2**20:>11.1f} {r['peak_rss_mb']:>12.1f}", flush=True)
            (d / f"in-{target}").unlink()


if __name__ == "__main__":
    main()
