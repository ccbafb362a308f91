"""The one check of user-supplied text that every service applies before storing it."""


def text_problem(value, *, name, max_length, min_length=0):
    """Why `value` cannot be stored as the text field `name`, or None if it can.

    Text must be a string of `min_length`..`max_length` characters with no NUL
    (PostgreSQL cannot store one).
    """
    if not isinstance(value, str):
        return f"{name} must be a string."
    if len(value) < min_length:
        return f"{name} must not be blank." if min_length == 1 else f"{name} is too short."
    if len(value) > max_length:
        return f"{name} must be at most {max_length} characters."
    if "\x00" in value:
        return f"{name} must not contain NUL characters."
    return None
