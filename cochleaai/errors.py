"""The one exception type a user can cause."""


class CochleaAIError(Exception):
    """An error caused by the input (wrong image, missing file, bad parameter).

    The message says what is wrong and what to do; the inputs are unchanged.
    """
