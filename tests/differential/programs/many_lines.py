# Many short lines.
for i in range(100000):
    print(i, i * i)
