# logging to stderr (basicConfig), with an exception traceback.
import logging
logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s")
log = logging.getLogger("prog")
log.debug("hidden")
log.info("info %d", 1)
log.warning("careful")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("division failed")
logging.getLogger().error("root error")
print("stdout line")
