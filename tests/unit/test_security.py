"""Security rules, one test each: no pickle or unsafe torch.load / yaml.load / shell=True
in the code; adapters only as safetensors; trust_remote_code off unless asked (and then
logged); the dashboard on 127.0.0.1 unless asked, with a warning otherwise."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from embodiment.errors import InputError
from embodiment.models.loading import load_adapter, load_model

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for d in ("embodiment", "grid") for p in (REPO / d).rglob("*.py"))


def _code_lines():
    for path in SOURCES:
        for no, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if code.strip() and not code.strip().startswith(('"', "'")):
                yield path.relative_to(REPO), no, code


@pytest.mark.parametrize(
    "pattern,why",
    [
        (r"\bimport pickle\b|\bpickle\.loads?\(|\bcloudpickle\.loads?\(", "pickle of files"),
        (r"torch\.load\((?![^)]*weights_only=True)", "torch.load without weights_only=True"),
        (r"yaml\.load\(|yaml\.unsafe_load|yaml\.full_load", "YAML other than safe_load"),
        (r"shell\s*=\s*True", "shell=True"),
        (r"trust_remote_code\s*=\s*True", "trust_remote_code hard-wired on"),
        (r"0\.0\.0\.0", "binding to every interface"),
    ],
)
def test_the_code_has_no(pattern, why):
    hits = [f"{p}:{n}: {c.strip()}" for p, n, c in _code_lines() if re.search(pattern, c)]
    assert not hits, f"{why}:\n" + "\n".join(hits)


def test_adapter_must_be_safetensors(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(InputError, match="adapter_model.safetensors"):
        load_adapter(None, tmp_path)


def test_trust_remote_code_is_off_by_default_and_logged_when_on(tmp_path, caplog):
    from embodiment.models.tiny import save_tiny_model

    path = save_tiny_model(tmp_path / "m")
    with caplog.at_level(logging.WARNING):
        load_model(path)
    assert "trust_remote_code" not in caplog.text
    with caplog.at_level(logging.WARNING):
        load_model(path, trust_remote_code=True)
    assert "trust_remote_code is ON" in caplog.text


def test_job_flag_trust_remote_code_defaults_off():
    from grid.spec import parse_job

    assert parse_job({"name": "x", "models": ["m"]}).trust_remote_code is False
    assert parse_job({"name": "x", "models": ["m"], "trust_remote_code": True}).trust_remote_code is True


def test_dashboard_binds_localhost_unless_asked(monkeypatch, capsys):
    import ray

    from grid import runner

    calls = []
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    runner.init_ray(num_cpus=1)
    assert calls[-1]["dashboard_host"] == "127.0.0.1" and capsys.readouterr().err == ""
    runner.init_ray(num_cpus=1, dashboard_host="10.1.2.3")
    assert calls[-1]["dashboard_host"] == "10.1.2.3"
    assert "warning: Ray dashboard bound to 10.1.2.3" in capsys.readouterr().err


def test_yaml_tags_cannot_run_code(tmp_path):
    from grid.job_file import load_job

    marker = tmp_path / "pwned"
    job = tmp_path / "job.yaml"
    job.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_job(job)
    assert not marker.exists()


def test_a_bin_only_model_folder_is_refused_unless_the_job_allows_it(tmp_path):
    """Pickled .bin weights load through torch.load: refused with one error naming the key."""
    import torch

    from embodiment.models.tiny import save_tiny_model

    path = Path(save_tiny_model(tmp_path / "m"))
    reference = load_model(str(path)).model
    # the same weights as a pickled pytorch_model.bin, the safetensors removed
    torch.save(reference.state_dict(), path / "pytorch_model.bin")
    for f in path.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(InputError, match="allow_bin_weights") as err:
        load_model(str(path))
    assert str(path) in str(err.value)
    loaded = load_model(str(path), allow_bin_weights=True).model
    for name, tensor in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    from grid.spec import parse_job

    assert parse_job({"name": "x", "models": ["m"]}).load_options()["allow_bin_weights"] is False
    assert parse_job({"name": "x", "models": ["m"], "allow_bin_weights": True}).load_options()["allow_bin_weights"]


def test_workers_go_online_only_when_the_job_allows_downloads_and_the_driver_is_not_offline(monkeypatch):
    from grid.ray_session import HUB_OFFLINE, hub_env

    for key in HUB_OFFLINE:
        monkeypatch.delenv(key, raising=False)
    assert set(hub_env(False).values()) == {"1"}
    assert set(hub_env(True).values()) == {"0"}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the user's own word wins
    assert set(hub_env(True).values()) == {"1"}
