"""The one exception type a user can cause."""


class CochleaAIError(Exception):
    """An error caused by the input (wrong image, missing file, bad parameter).

    The message says what is wrong and what to do; the inputs are unchanged.
    """


#: Exit status of a command for an error the user can fix (a message says which).
EXIT_USER_ERROR = 2
#: Exit status of a command that finished and wrote its files, but whose result quality control
#: flags (a fit that may have missed the cochlea, an input outside a model's domain), or a
#: batch in which some items failed or were flagged; the reasons are on stderr.
EXIT_FLAGGED = 3
#: Exit status after Ctrl-C, SIGTERM or Cancel (the shell's 128 + SIGINT).
EXIT_CANCELLED = 130
