"""Errors meant for the user. The CLI prints them as one line, without a traceback."""

import errno


class VtrError(Exception):
    """Base of every error whose message alone tells the user what went wrong and what to do."""


class CheckpointError(VtrError):
    """A checkpoint does not match the model: missing, unexplained or mis-shaped keys."""


class WeightsNotFoundError(VtrError):
    """Released weights are neither cached nor downloadable (offline); the message says what to fetch."""


class VideoReadError(VtrError):
    """A video file (or byte string) cannot be decoded; the message names the file and the cause."""

    def __init__(self, source, cause: str, decodable_frames: int | None = None):
        self.source = str(source)
        self.cause = cause
        # Frames 0 .. decodable_frames - 1 did decode (known when decoding ran from the start and then failed): a
        # file damaged or cut short in the middle can still be used up to there.
        self.decodable_frames = decodable_frames
        super().__init__(f"cannot read video {self.source}: {cause}")


def disk_full(e: BaseException) -> bool:
    """Whether ``e`` says the disk (or the user's quota) is full: ``ENOSPC``/``EDQUOT``, or sqlite's "database or
    disk is full". Its callers say so in place of the error (a build, a checkpoint, the app's cache)."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    return type(e).__module__ == "sqlite3" and "disk is full" in str(e)
