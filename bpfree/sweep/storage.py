"""Where a study lives: a SQLite file in the sweep folder by default, or any database URL that
Optuna (SQLAlchemy) accepts, so that workers on many machines share one study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bpfree.sweep.space import SpecError

STUDY_FILE = "study.db"
SPEC_ATTRIBUTE = "bpfree_spec_fingerprint"


def default_url(folder: Path) -> str:
    return f"sqlite:///{(folder / STUDY_FILE).absolute()}"


def open_storage(optuna: Any, url: str) -> Any:
    """Optuna's storage at ``url``; a ``SpecError`` naming the URL (never its password) when it
    is not a database URL, its database driver is missing, or the database cannot be opened."""
    check_driver(url)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine)
    except Exception as error:  # SQLAlchemy's many errors: a refused connection, a bad file
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SpecError(f"--storage {_safe(url)} cannot be opened: {first}") from None


def check_driver(url: str) -> None:
    """A ``SpecError`` when SQLAlchemy cannot read ``url`` or lacks the driver it names."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(url).get_dialect().import_dbapi()
    except ArgumentError:
        raise SpecError(
            f"--storage {_safe(url)} is not a database URL (e.g. sqlite:///study.db, "
            "postgresql://user@host/db)"
        ) from None
    except NoSuchModuleError:
        raise SpecError(f"--storage {_safe(url)}: SQLAlchemy knows no such database") from None
    except ImportError as error:
        raise SpecError(
            f"--storage {_safe(url)}: its database driver {error.name!r} is not installed; "
            "install it (for PostgreSQL, pip install psycopg2-binary; MySQL, pip install pymysql)"
        ) from None


def open_study(
    optuna: Any, storage: Any, name: str, fingerprint: str, sampler: Any, pruner: Any
) -> Any:
    """The study ``name`` in ``storage``, created on first use; an error when it was made from
    another spec (its trials would not be comparable)."""
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=sampler,
        pruner=pruner,
    )
    saved = study.user_attrs.get(SPEC_ATTRIBUTE)
    if saved is None:
        study.set_user_attr(SPEC_ATTRIBUTE, fingerprint)
    elif saved != fingerprint:
        raise SpecError(
            f"the study {name!r} in this storage was made from another spec (its base, space, "
            "objective or pruner differ); give the sweep another name or --out"
        )
    return study


def _safe(url: str) -> str:
    """``url`` without its password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":")[0]
    return f"{scheme}{sep}{user}:***@{host}"
