"""benchmarks/gpu.py: its CPU-safe parts run here, so the GPU script cannot rot."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def load():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_cpu_run_writes_every_row(tmp_path, capsys):
    gpu = load()
    rows = gpu.main(["--device", "cpu", "--tiny", "--json", str(tmp_path / "out.json")])
    status = {r["check"]: r["status"] for r in rows}
    assert status == {"autocast-bf16": "pass", "autocast-fp16": "pass", "fp16-overflow": "pass",
                      "cuda-rng": "skipped", "gpu-to-cpu": "skipped", "host-syncs": "skipped",
                      "nccl-resume": "skipped", "float32": "measured",
                      "amp-speedup": "measured"}
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["device"] == "cpu" and saved["rows"] == rows
    out = capsys.readouterr().out
    assert "tiny sizes: not a measurement" in out
    assert out.count("\n") == 2 + len(rows)  # the title, the header and one line per row
    overflow = next(r for r in rows if r["check"] == "fp16-overflow")
    assert overflow["value"] < 2.0**16  # the scaler halved its scale when it skipped


def test_table_aligns_and_arguments_are_checked(capsys):
    gpu = load()
    text = gpu.table([gpu.row("x", "pass", 1234.5, "x", "note"), gpu.row("y", "skipped")])
    assert text.splitlines()[1].split() == ["x", "pass", "1,234.500", "x", "note"]
    assert text.splitlines()[2].split() == ["y", "skipped"]
    with pytest.raises(SystemExit):
        gpu.parse_args(["--rounds", "0"])
    assert "--rounds must be >= 1, got 0" in capsys.readouterr().err
