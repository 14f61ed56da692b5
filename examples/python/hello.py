# Runs Python code in a shmrepl engine (started if none listens on $SHMREPL_SOCKET or the
# default socket) and prints what it writes, as it arrives. Needs the binding:
# PYTHONPATH=bindings/python (or pip install bindings/python) and libshmrepl
# ($SHMREPL_LIBRARY, the build tree, or the system).
import asyncio
import sys

from shmrepl import Session, ExecuteMessage, MessageType, Stream

CODE = "print(6 * 7)\n"


async def main():
    async with Session() as session:
        async for msg in session.execute(ExecuteMessage(id="hello-1", code=CODE)):
            if msg.type == MessageType.OUTPUT:
                print(msg.data, end="", file=sys.stderr if msg.stream == Stream.STDERR else sys.stdout)


asyncio.run(main())
