"""Files from the Hugging Face hub: one lookup for every weight, config and vocabulary file, one offline message.

Where a file is looked for, in order: a folder where it was placed by hand (``placed_dir``; the released
VideoMamba checkpoints use ``$VTR_WEIGHTS``), the hub cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``), then a
download unless ``HF_HUB_OFFLINE`` is set or the hub cannot be reached. Both environment variables are read at call
time.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from vtr.errors import WeightsNotFoundError


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return value.strip().lower() in {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """HF_HUB_OFFLINE read at call time (huggingface_hub reads it once, at import)."""
    flag = _env_flag("HF_HUB_OFFLINE")
    if flag is not None:
        return flag
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> str:
    """The hub cache folder for the current environment (HF_HUB_CACHE, else HF_HOME/hub, else the default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub's host opens within ``timeout`` s. Behind a proxy it is assumed to (the
    proxy decides). Without it, a machine with no network waited for huggingface_hub's five retries of each file
    (about 25 s, a screen of warnings) before the message that says what to download."""
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return True
    from urllib.parse import urlparse

    url = urlparse(hub_endpoint())
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _cached(repo_id: str, filename: str, cache_dir: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir), str)
    except Exception:  # noqa: BLE001 - an invalid name: hf_hub_download below says so
        return False


def hub_file(repo_id: str, filenames: list[str], what: str, placed_dir: str | os.PathLike | None = None,
             otherwise: str | None = None) -> str:
    """Local path of the first of ``filenames`` of hub repo ``repo_id``: placed by hand in ``placed_dir``, else
    from the hub cache, else downloaded unless offline.

    Raises WeightsNotFoundError saying what to fetch and where to put it; ``otherwise`` adds the caller's own way
    round (e.g. passing a local path instead).
    """
    if placed_dir is not None:
        for filename in filenames:
            placed = Path(placed_dir).expanduser() / filename
            if placed.is_file():
                return str(placed)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    offline = hub_offline()
    cache_dir = hub_cache_dir()
    # Not cached and no network: the cache is all there is (see hub_reachable)
    unreachable = not offline and not any(_cached(repo_id, f, cache_dir) for f in filenames) and not hub_reachable()
    local_only = offline or unreachable
    problems = []
    for filename in filenames:
        try:
            return hf_hub_download(repo_id, filename, cache_dir=cache_dir, local_files_only=local_only)
        except HFValidationError as e:
            raise WeightsNotFoundError(
                f"{what}: {repo_id!r} is neither an existing local path nor a valid Hugging Face hub name ({e})"
            ) from e
        except LocalEntryNotFoundError as e:  # not cached, and offline or the hub unreachable
            local_only = True  # don't wait for the network again for the next candidate
            problems.append(f"{filename}: {type(e).__name__}")
        except (OSError, ValueError) as e:  # no such repo or file on the hub, gated, other I/O errors
            problems.append(f"{filename}: {type(e).__name__}")
    state = ("HF_HUB_OFFLINE is set" if offline else f"{hub_endpoint()} cannot be reached from this machine"
             if unreachable else "downloading failed")
    where = f"in {placed_dir} nor " if placed_dir is not None else ""
    command = f"{repo_id} {filenames[0]}"
    placed = (f"; or fetch https://huggingface.co/{repo_id}/resolve/main/{filenames[0]} and put it at "
              f"{Path(placed_dir).expanduser() / filenames[0]}" if placed_dir is not None else "")
    raise WeightsNotFoundError(
        f"{what} {repo_id!r} not found: none of {filenames} is {where}in the Hugging Face cache {cache_dir}, and "
        f"{state} ({'; '.join(problems)}). On a machine with internet, run `hf download {command}` (older "
        f"huggingface_hub: `huggingface-cli download {command}`) and copy its cache folder to {cache_dir} (or point "
        f"HF_HOME at it){placed}" + (f"; or {otherwise}." if otherwise else ".")
    )
