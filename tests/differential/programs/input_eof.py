# input() with a prompt at end of file: the prompt, then EOFError's traceback.
print("start")
input("prompt> ")
