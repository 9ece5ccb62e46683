"""The one exception type a user can cause, and the exit statuses of the commands."""

#: A command stopped on an error the user can fix (a :class:`CochleaAIError`; one sentence on stderr).
EXIT_USER_ERROR = 2
#: A command finished and wrote its files, but quality control flags the result (a fit that
#: may have missed the cochlea, an input outside a model's domain), or a batch in which some
#: items failed or were flagged: stderr says why and the table which, so that a script can
#: tell "look at it" from success.
EXIT_FLAGGED = 3
#: Stopped by Ctrl-C, SIGTERM or Cancel (128 + SIGINT, as a shell reports Ctrl-C).
EXIT_CANCELLED = 130


class CochleaAIError(Exception):
    """An error caused by the input (wrong image, missing file, bad parameter).

    The message says what is wrong and what to do; the inputs are unchanged.
    """
