"""URL converters: an object id is a positive number the database can hold."""

MAX_ID = 2**63 - 1  # BigAutoField's ceiling; a larger number names nothing


class IdConverter:
    """Like Django's `int`, but a number past MAX_ID is no match (404), not a 500."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError("past the largest id")
        return number

    def to_url(self, value: int) -> str:
        return str(value)
