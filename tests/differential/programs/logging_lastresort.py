# logging without configuration: the last-resort handler prints the message to stderr.
import logging
logging.warning("a warning without config")
logging.getLogger("x").error("an error")
logging.info("not shown")
