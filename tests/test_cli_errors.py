"""Every exit path of `vcc`: 0 ok, 2 bad input (one line, no traceback), 1 a failed run, --debug/VCC_DEBUG."""

from __future__ import annotations

import pytest
from conftest import run_vcc

import vcclib
from vcclib import cli
from vcclib.errors import VccError


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    assert lines and lines[-1].startswith(("vcc: error: ", "vcc run: error: ", "vcc data: error: "))
    return lines[-1]


def test_version_prints_the_package_version(isolated_env):
    completed = run_vcc(["--version"], isolated_env)
    assert completed.returncode == 0 and completed.stdout.strip() == f"vcc {vcclib.__version__}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "no_such_chapter"], "no chapter 'no_such_chapter'; chapters: data_catalog"),
        (["run", "missing/notebook.ipynb"], "no notebook at missing/notebook.ipynb"),
        (["run", "data_catalog", "-f", "no_such_params.yaml"], "no parameters file at no_such_params.yaml"),
        (["data", "info", "no_such_dataset"], "unknown dataset 'no_such_dataset'"),
        (["data", "query", "perturbed_gene"], "is not FEATURE=VALUE"),
        (["data", "fetch"], "name dataset ids, or --embedded"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, isolated_env):
    completed = run_vcc(args, isolated_env)
    assert completed.returncode == 2, completed.stderr
    line = _one_error_line(completed.stderr)
    assert line.startswith("vcc: error: ") and message in line


@pytest.mark.parametrize("args", [["run"], ["--no-such-flag"], ["data", "info"], ["frobnicate"]])
def test_bad_arguments_exit_2_with_argparse_usage(args, isolated_env):
    completed = run_vcc(args, isolated_env)
    assert completed.returncode == 2
    assert "usage: vcc" in completed.stderr and "Traceback" not in completed.stderr


def test_no_command_prints_help_and_exits_2(isolated_env):
    completed = run_vcc([], isolated_env)
    assert completed.returncode == 2 and "COMMAND" in completed.stderr


def _fail_with(error: BaseException):
    def command(args):
        raise error

    return command


@pytest.fixture
def failing_command(monkeypatch):
    """`vcc config` replaced by a command that raises the given error (in-process)."""

    def install(error: BaseException):
        from vcclib.cli import config_cmd

        monkeypatch.setattr(config_cmd, "show", _fail_with(error))

    return install


def test_an_unexpected_exception_is_a_failed_run_exit_1_without_traceback(failing_command, capsys, monkeypatch):
    monkeypatch.delenv("VCC_DEBUG", raising=False)
    failing_command(ZeroDivisionError("division by zero in a step"))
    assert cli.main(["config"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("vcc: error: ZeroDivisionError: division by zero in a step") and "--debug" in err


@pytest.mark.parametrize("how", ["flag-before", "flag-after", "env"])
def test_debug_shows_the_traceback(how, failing_command, capsys, monkeypatch):
    monkeypatch.delenv("VCC_DEBUG", raising=False)
    failing_command(ZeroDivisionError("boom"))
    argv = {"flag-before": ["--debug", "config"], "flag-after": ["config", "--debug"], "env": ["config"]}[how]
    if how == "env":
        monkeypatch.setenv("VCC_DEBUG", "1")
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError: boom" in err


def test_a_vcc_error_message_on_several_lines_is_printed_on_one(failing_command, capsys):
    failing_command(VccError("first part\n   second part"))
    assert cli.main(["config"]) == 2
    assert capsys.readouterr().err == "vcc: error: first part second part\n"


def test_every_error_class_of_vcclib_is_a_vcc_error():
    from vcclib.config import ConfigError
    from vcclib.data.catalog import CatalogError
    from vcclib.data.fetch import ChecksumError, DatasetUnavailableError
    from vcclib.data.manifest import ManifestError
    from vcclib.data.schema import SchemaError
    from vcclib.errors import OptionalDependencyError, PathNotFoundError, UnknownNameError
    from vcclib.metrics.inputs import InputError
    from vcclib.models.features import FeatureUnavailable
    from vcclib.pipeline.book import BookBuildError
    from vcclib.pipeline.notebooks import NotebookRunError, ParameterError

    bad_input = [FeatureUnavailable, ConfigError, CatalogError, ChecksumError, DatasetUnavailableError,
                 ManifestError, SchemaError, OptionalDependencyError, PathNotFoundError, UnknownNameError,
                 InputError, ParameterError]  # fmt: skip
    for error in bad_input:
        assert issubclass(error, VccError) and error.exit_code == 2, error
    for error in (BookBuildError, NotebookRunError):  # a run that started and failed
        assert issubclass(error, VccError) and error.exit_code == 1, error
    # the second bases stay, so `except ValueError` / `pytest.raises(KeyError)` still catch them
    assert issubclass(SchemaError, ValueError) and issubclass(UnknownNameError, KeyError)
    assert issubclass(PathNotFoundError, FileNotFoundError) and issubclass(ChecksumError, RuntimeError)
