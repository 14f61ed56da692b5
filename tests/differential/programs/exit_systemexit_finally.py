# raise SystemExit(2) from a nested function, finally blocks run
def f():
    try:
        raise SystemExit(2)
    finally:
        print("finally ran")
f()
