"""``dijk keys``: the key ring that seals Dijk's own sensitive data at rest.

``init`` creates the ring (and the sealed pseudonym key); ``status`` lists key versions;
``rotate`` adds a key that new data is sealed with (after the gateway reloads: SIGHUP),
keeping older versions readable; ``rotate --reencrypt`` (or ``reencrypt`` later) moves
everything sealed under the data directory to the newest key, and with Vault Transit also
rewraps the stored data keys under the newest Transit version.

Exit codes: 0 success; 2 the command could not run. Never prints key material.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dijk.crypto.files import ReencryptReport, reencrypt_tree
from dijk.crypto.keyfile import (
    describe_key_ring,
    load_key_ring,
    rewrap_key_ring,
    rotate_key_ring,
)
from dijk.crypto.keyring import CryptoError, KeyRing
from dijk.privacy.settings import PrivacySettings, data_dir_for

__all__ = ["keys_app"]

keys_app = typer.Typer(
    help="Encryption keys for Dijk's data at rest: init, status, rotate, reencrypt.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Gateway configuration (privacy.keys, privacy.data_dir)."),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(help="Data directory (default: from --config, else ./.dijk)."),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _settings(config: Path | None, data_dir: Path | None) -> tuple[PrivacySettings, Path]:
    if config is None:
        return PrivacySettings(), data_dir or Path(".dijk")
    from dijk.config import ConfigError, load_config

    try:
        loaded = load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    return loaded.privacy, data_dir or data_dir_for(loaded.privacy, loaded.audit.url)


@keys_app.command("init")
def init(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Create the key ring and the sealed pseudonym key (no-op for what exists)."""
    from dijk.privacy.keys import load_privacy_keys

    settings, directory = _settings(config, data_dir)
    path = settings.keys.path(directory)
    existed = path.exists()
    try:
        keys = load_privacy_keys(settings, directory)
    except CryptoError as exc:
        raise _fail(str(exc)) from None
    verb = "exists" if existed else "created"
    typer.echo(
        f"{path}: {verb}, key versions {list(keys.ring.versions)}, primary {keys.ring.primary}"
    )


@keys_app.command("status")
def status(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Key versions, creation times and how the ring is protected (no key material)."""
    settings, directory = _settings(config, data_dir)
    try:
        info = describe_key_ring(settings.keys.path(directory))
    except CryptoError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"key ring   {info.path}")
    protection = info.protection
    if info.vault:
        protection += (
            f" ({info.vault.get('url')}, {info.vault.get('mount')}/{info.vault.get('key')})"
        )
    typer.echo(f"protection {protection}")
    for version, created in info.versions:
        marker = "  primary" if version == info.primary else ""
        typer.echo(f"  v{version}  {created}{marker}")


@keys_app.command("rotate")
def rotate(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    reencrypt: Annotated[
        bool,
        typer.Option(
            "--reencrypt", help="Also re-encrypt everything sealed under the data directory."
        ),
    ] = False,
    rotate_vault_key: Annotated[
        bool,
        typer.Option(
            "--rotate-vault-key/--keep-vault-key",
            help="With Vault Transit: rotate the Transit key too (default).",
        ),
    ] = True,
) -> None:
    """Add a new key version; new data uses it after the gateway reloads (SIGHUP)."""
    settings, directory = _settings(config, data_dir)
    vault = settings.keys.vault.transit() if settings.keys.vault is not None else None
    path = settings.keys.path(directory)
    try:
        ring = rotate_key_ring(path, vault, rotate_vault_key=rotate_vault_key)
    except CryptoError as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"{path}: added key version {ring.primary}; older versions"
        f" {[v for v in ring.versions if v != ring.primary]} stay readable"
    )
    typer.echo("reload the gateway (SIGHUP or POST /admin/api/v1/reload) to seal new data with it")
    if reencrypt:
        _reencrypt(ring, settings, directory, path)


@keys_app.command("reencrypt")
def reencrypt_command(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Re-encrypt everything sealed under the data directory with the primary key."""
    settings, directory = _settings(config, data_dir)
    vault = settings.keys.vault.transit() if settings.keys.vault is not None else None
    path = settings.keys.path(directory)
    try:
        ring = load_key_ring(path, vault)
    except CryptoError as exc:
        raise _fail(str(exc)) from None
    _reencrypt(ring, settings, directory, path)


def _reencrypt(ring: KeyRing, settings: PrivacySettings, directory: Path, path: Path) -> None:
    report: ReencryptReport = reencrypt_tree(directory, ring, exclude=("upstream",))
    typer.echo(
        f"re-encrypted {report.values} value(s) in {report.files} file(s) under {directory}"
        f" to key version {ring.primary}; {report.already_current} already current"
    )
    if settings.keys.vault is not None:
        try:
            changed = rewrap_key_ring(path, settings.keys.vault.transit())
        except CryptoError as exc:
            raise _fail(str(exc)) from None
        typer.echo(f"rewrapped {changed} data key(s) under the newest Vault Transit version")
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)
    if report.errors:
        raise typer.Exit(2)
