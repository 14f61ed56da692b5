# Unicode output: accents, CJK, emoji, combining marks, right-to-left, zero-width.
print("héllo wörld")
print("日本語のテキスト 中文 한국어")
print("emoji: 🐍🚀✨ flag: 🇫🇷")
print("combining: e\u0301 a\u0308 n\u0303")
print("rtl: שלום مرحبا")
print("zero width:[\u200b] nbsp:[\u00a0] bom:[\ufeff]")
print("astral: \U0001f600 \U00010348")
print("".join(chr(c) for c in range(0x20, 0x7f)))
