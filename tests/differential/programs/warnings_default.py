# Warnings as python3 shows them by default.
import warnings


def old():
    warnings.warn("old() is deprecated", DeprecationWarning, stacklevel=2)


warnings.warn("a user warning")
old()
warnings.warn("runtime thing", RuntimeWarning)
for i in range(3):
    warnings.warn("only once per location")
warnings.simplefilter("ignore")
warnings.warn("ignored")
print("done")
