# Chained exceptions: explicit cause, implicit context, suppressed context.
def parse(s):
    try:
        return int(s)
    except ValueError as e:
        raise RuntimeError(f"cannot parse {s!r}") from e


try:
    parse("x")
except RuntimeError as e:
    print("cause:", repr(e.__cause__))

try:
    try:
        {}["k"]
    except KeyError:
        raise ValueError("from None") from None
except ValueError as e:
    print("suppressed:", e.__suppress_context__)

try:
    {}["missing"]
except KeyError:
    parse("y")
