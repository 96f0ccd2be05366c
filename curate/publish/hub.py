"""Writing the Hub-ready folder and uploading it: :func:`publish`."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

from .._format import HUB_ID
from ..errors import CurateError
from ._local import Scrubber
from .card import check_card, make_card
from .read import (
    AUDIT_DIR,
    BEFORE_AFTER_PNG,
    DATA_DIR,
    IMAGES_DIR,
    VOLCANO_PNG,
    CuratedData,
    _written_splits,
    read_curated,
)
from .sections import _actions

logger = logging.getLogger(__name__)

_REPO_ID = HUB_ID


def _write_audit_files(data: CuratedData, folder: Path) -> None:
    audit = folder / AUDIT_DIR
    audit.mkdir(exist_ok=True)
    for name, src in data.files.items():
        if src.suffix == ".csv":
            pd.read_csv(src).to_parquet(audit / (Path(name).stem + ".parquet"), index=False)
        else:
            shutil.copy(src, audit / name)
    if data.before_after is not None:
        data.before_after.to_parquet(audit / "before_after.parquet", index=False)
    if data.recipe_text is not None:
        (audit / "recipe.yaml").write_text(data.recipe_text, encoding="utf-8")
    elif data.recipe is not None:
        import yaml

        (audit / "recipe.yaml").write_text(yaml.safe_dump(data.recipe, sort_keys=False), encoding="utf-8")


def _write_images(data: CuratedData, folder: Path) -> dict[str, str]:
    from ..plots import plot_before_after, plot_volcano

    images = folder / IMAGES_DIR
    actions = _actions(data.recipe)
    out = {}
    if data.audit is not None and len(data.audit):
        plot_volcano(data.audit, images / VOLCANO_PNG, actions=actions)
        out["volcano"] = f"{IMAGES_DIR}/{VOLCANO_PNG}"
    ba = data.before_after
    if ba is not None and len(ba) and "win_rate_after" in ba:
        order = [c for c in actions if c in set(ba["concept"])] or list(ba["concept"])
        plot_before_after(ba, images / BEFORE_AFTER_PNG, actions=actions or None, concepts=order[:20])
        out["before_after"] = f"{IMAGES_DIR}/{BEFORE_AFTER_PNG}"
    return out


def _scrub_local(data: CuratedData, made_from: dict, *folders) -> Scrubber:
    """A :class:`Scrubber` that knows the local folders behind ``data``; the records the card and the copied
    files are made from (recipe, apply record, audit summary) lose their local paths here."""
    scrub = Scrubber([f for f in (*folders, data.folder, data.annotated_dir) if f is not None])
    scrub.learn(data.recipe, data.report, data.audit_summary, made_from)
    data.recipe = scrub.value(data.recipe) if data.recipe is not None else None
    data.report = scrub.value(data.report)
    data.audit_summary = scrub.value(data.audit_summary) if data.audit_summary is not None else None
    if data.recipe_text is not None:
        data.recipe_text = scrub.text(data.recipe_text)
    return scrub


def _content_fingerprint(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()[:16]


def _is_connection_error(err: BaseException) -> bool:
    names = {c.__name__ for c in type(err).__mro__}
    return isinstance(err, (ConnectionError, TimeoutError)) or bool(
        names & {"ConnectError", "ConnectTimeout", "TransportError", "NetworkError", "TimeoutException", "ProxyError"}
    )


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def _upload(folder: Path, repo_id: str, *, private: bool, token: str) -> str:
    from huggingface_hub import HfApi

    from .._version import __version__

    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=str(folder),
        commit_message=f"Publish curated dataset (curate {__version__})",
    )
    return str(url)


def publish(
    curated_dir: str | Path,
    *,
    repo_id: str | None = None,
    local_dir: str | Path | None = None,
    private: bool | None = None,
    upload: bool | None = None,
    token: str | None = None,
    audit_dir: str | Path | None = None,
    license: str | None = None,
    learning_dir: str | Path | None = None,
) -> Path:
    """Write a Hub-ready folder for a curated dataset, with its concept-audit card, and upload it if possible.

    Args:
        curated_dir: the ``--out`` folder of ``curate apply`` (a saved ``DatasetDict`` with ``train`` and
            ``dropped``, plus the recipe, re-audit and apply record when present).
        repo_id: the dataset repository, ``user/name`` (default: the recipe's ``publish.repo_id``).
        local_dir: where to write the folder (default: ``<curated_dir>/../published``). An existing folder
            must be empty or a previous ``curate publish`` output (which is replaced).
        private: create the repository private (default: the recipe's ``publish.private``, else False).
        upload: ``None`` uploads when a token is available and the Hub is reachable (and otherwise says why
            and keeps the folder); ``False`` never uploads; ``True`` uploads or raises.
        token: Hub token (default: ``HF_TOKEN`` or the stored login). Never written or logged.
        audit_dir: the ``curate audit`` folder of the source data, when it is not found automatically.
        license: license id for the card (default: the recipe's ``publish.license``, else ``unknown``).
        learning_dir: the folder of ``curate learn`` (default: ``<curated_dir>/learning`` or a ``learning*``
            sibling, when one exists); adds the card section "What a model learned from it".

    Returns:
        The local folder (``Path``).

    Example:

        >>> from curate.publish import publish
        >>> folder = publish("outputs/demo/curated", repo_id="me/demo", upload=False)  # doctest: +SKIP
        >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
        ['README.md', 'audit', 'data', 'images']
    """
    data = read_curated(curated_dir, audit_dir=audit_dir)
    from .. import folders as F

    made_from = F.read_manifest(data.folder)
    scrub = _scrub_local(data, made_from, curated_dir, audit_dir)
    pub = (data.recipe or {}).get("publish") or {}
    repo_id = repo_id or pub.get("repo_id")
    if not repo_id or not _REPO_ID.match(repo_id):
        raise CurateError(f"repo_id must look like 'user/name' (letters, digits, '-', '_', '.'); got {repo_id!r}.")
    if private is None:
        private = bool(pub.get("private", False))
    folder = Path(local_dir) if local_dir is not None else Path(curated_dir).resolve().parent / "published"
    replacing = folder.exists() and any(folder.iterdir())
    with F.atomic_folder(folder, kind="published") as tmp:
        (tmp / DATA_DIR).mkdir()
        fingerprints = {}
        for split in _written_splits(data.dataset):
            path = tmp / DATA_DIR / f"{split}-00000-of-00001.parquet"
            data.dataset[split].to_parquet(str(path))
            fingerprints[split] = _content_fingerprint(path)
        _write_audit_files(data, tmp)
        images = _write_images(data, tmp)
        from ..learning.card import card_section, copy_learning, find_learning_dir

        found = find_learning_dir(curated_dir, learning_dir)
        learning = card_section(found, copy_learning(found, tmp)) if found is not None else None
        card = make_card(
            data, repo_id=repo_id, license=license, images=images, fingerprints=fingerprints, learning=learning
        )
        card.save(tmp / "README.md")
        check_card(tmp)
        scrub.folder(tmp)  # every JSON and text file, the data rows excepted: nothing local leaves the machine
        F.write_manifest(
            tmp,
            kind="published",
            source=scrub.value(made_from.get("source")),
            source_fingerprint=made_from.get("source_fingerprint"),
            rows=made_from.get("rows"),
            made_from=scrub.value(made_from),
            repo_id=repo_id,
            has_audit=data.audit is not None,
        )
    if replacing:
        logger.info("replaced the earlier published folder %s (nothing of it is kept)", folder)
    logger.info("wrote %s", folder)

    later = f"upload later with `hf upload {repo_id} {folder} --repo-type dataset`"
    if upload is False:
        logger.info("not uploaded (upload=False); the folder is ready at %s; %s", folder, later)
        return folder
    from huggingface_hub import constants, get_token

    token = token or get_token()
    reason = "offline (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else None
    if not token:
        reason = "no token" + (f" / {reason}" if reason else " (set HF_TOKEN or run `hf auth login`)")
    if reason:
        message = f"not uploaded: {reason}; the folder is ready at {folder}; {later}"
        if upload:
            raise CurateError(message)
        logger.warning(message)
        return folder
    try:
        url = _upload(folder, repo_id, private=private, token=token)
    except Exception as err:  # noqa: BLE001 - reported without the token, and the folder is kept
        message = _scrub(f"{type(err).__name__}: {err}", token)
        if upload is None and _is_connection_error(err):
            logger.warning(
                "not uploaded: the Hub is not reachable (%s); the folder is ready at %s; %s", message, folder, later
            )
            return folder
        raise CurateError(f"Upload of {folder} to {repo_id} failed ({message}); the folder is kept; {later}.") from None
    logger.info("uploaded %s to %s", folder, url)
    return folder
