"""User-facing errors: the CLI and the service print their message as one line, never a traceback."""


class NasferError(Exception):
    """Base class of every error that is the user's input, not a bug."""


class DataError(NasferError):
    """A dataset, row or image that cannot be read (message names the file/row and the reason)."""


class ModelError(NasferError):
    """A model, checkpoint, genotype or model card that cannot be loaded or is inconsistent."""


class ImageError(NasferError):
    """An input picture that cannot be decoded or is unacceptable (too large, empty, ...)."""
