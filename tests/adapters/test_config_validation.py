"""Adapter options and credentials are checked when the node's config is loaded: a bad
``[[upstream]]`` stops ``portmesh node --config`` with one line naming the upstream and
the option, before anything is opened or any request is made."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from adapters.registry import AdapterSpec, validate_spec
from portmesh.cli import main
from support.servers import portmesh_command

#: (the [[upstream]] table, what the one-line error must say)
BAD_UPSTREAMS = [
    (
        'name = "az"\ntype = "acr"\nurl = "https://r.azurecr.io"\npassword = "t"\n'
        '[upstream.options]\nauth = "aad_token"',
        "upstream az: upstream type 'acr': auth aad_token needs option tenant",
    ),
    (
        'name = "az"\ntype = "acr"\nurl = "https://r.azurecr.io"\n'
        '[upstream.options]\nauth = "managed"',
        "upstream az: upstream type 'acr': auth must be one of admin, aad_token, aad_client",
    ),
    (
        'name = "aws"\ntype = "ecr"\nurl = "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"',
        "upstream aws: upstream type 'ecr': username (access key id) and password",
    ),
    (
        'name = "aws"\ntype = "ecr"\nurl = "https://registry.example"\nusername = "AKIA"\n'
        'password = "s"',
        "upstream aws: upstream type 'ecr': option 'region' is required",
    ),
    (
        'name = "g"\ntype = "gcr"\npassword = "{not json"',
        "upstream g: upstream type 'gcr': password is not a JSON key file",
    ),
    (
        'name = "hub"\ntype = "docker-hub"\n[upstream.options]\nnamespce = "team"',
        "upstream hub: upstream type 'docker-hub': unknown option(s) namespce",
    ),
    (
        'name = "q"\ntype = "quay"\n[upstream.options]\ntag_page_size = "ten"',
        "upstream q: upstream type 'quay': option 'tag_page_size' must be a int, not str",
    ),
    (
        'name = "jf"\ntype = "artifactory"\nurl = "https://jf.example"',
        "upstream jf: upstream type 'artifactory': option 'repository_key' is required",
    ),
    (
        'name = "ali"\ntype = "alibaba-acr"\nurl = "https://registry.cn-hangzhou.aliyuncs.com"\n'
        '[upstream.options]\nauth = "access_key"',
        "upstream ali: upstream type 'alibaba-acr': auth access_key needs instance_id",
    ),
    (
        'name = "mirror"\nurl = "ftp://registry.example"',
        "upstream mirror: upstream type 'oci': url must start with http:// or https://",
    ),
]


@pytest.mark.parametrize(("table", "message"), BAD_UPSTREAMS)
def test_bad_upstream_fails_at_config_load_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, message: str
) -> None:
    config = tmp_path / "node.toml"
    config.write_text(f"[[upstream]]\n{table}\n")
    data = tmp_path / "data"
    argv = ["node", "--no-auth", "--listen", "127.0.0.1:0", "--data", str(data)]
    assert main([*argv, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("portmesh: "), err
    assert message in err, err
    assert not data.exists(), "nothing may be opened before the config is accepted"


async def test_the_installed_command_refuses_a_bad_upstream(tmp_path: Path) -> None:
    """The real ``portmesh`` process: exit status 2, one stderr line, no secret in it."""
    config = tmp_path / "node.toml"
    config.write_text(
        '[[upstream]]\nname = "az"\ntype = "acr"\nurl = "https://r.azurecr.io"\n'
        'username = "app"\npassword = "very-secret-value"\n'
        '[upstream.options]\nauth = "aad_client"\nregion = "westeurope"\n'
    )
    command = [*portmesh_command(), "node", "--no-auth", "--listen", "127.0.0.1:0"]
    with trio.fail_after(30):
        result = await trio.run_process(
            [*command, "--data", str(tmp_path / "data"), "--config", str(config)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert err.splitlines() == [
        "portmesh: upstream az: upstream type 'acr': unknown option(s) region"
        " (known: aad_endpoint, auth, tenant)"
    ]
    assert "very-secret-value" not in err + result.stdout.decode()


def test_validate_spec_accepts_a_good_spec_and_refuses_unknown_types() -> None:
    """A spec whose client would log in (ECR) is checked without a login or a client."""
    validate_spec(
        AdapterSpec(
            "ecr",
            url="https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            username="AKIAEXAMPLE",
            password="secret",
        )
    )
    with pytest.raises(ValueError, match="unknown upstream type 'nope'"):
        validate_spec(AdapterSpec("nope", url="https://x"))
