# A syntax error in the program itself.
print("never printed")
def broken(:
    pass
