# input() with a prompt, from piped stdin; EOFError at the end.
name = input("name? ")
age = input("age? ")
print(f"hello {name}, {int(age) + 1} next year")
try:
    input("more? ")
except EOFError:
    print("EOF")
input("again? ")
