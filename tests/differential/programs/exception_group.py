# An ExceptionGroup traceback (3.11), with a note.
def fail(n):
    raise ValueError(f"bad {n}")


errors = []
for n in range(2):
    try:
        fail(n)
    except ValueError as e:
        e.add_note(f"note for {n}")
        errors.append(e)
raise ExceptionGroup("several", errors + [TypeError("t")])
