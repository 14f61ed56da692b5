# open() of a file beside the program, by a path relative to the working folder.
import os
with open("data.txt") as f:
    rows = [line.split() for line in f]
print(rows)
print(sum(int(n) for _, n in rows))
print(os.path.exists("data.txt"), os.path.isfile("./data.txt"))
with open("out_relative.tmp", "w") as f:
    f.write("written\n")
print(open(os.path.join(os.getcwd(), "out_relative.tmp")).read(), end="")
os.remove("out_relative.tmp")
