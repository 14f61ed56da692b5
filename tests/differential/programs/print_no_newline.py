# print with sep/end and no final newline.
print(1, 2, 3, sep="-", end="")
print("|", end="")
print("x", "y", sep="", end="\r\n")
print("tail", end="")
