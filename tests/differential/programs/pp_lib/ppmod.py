VALUE = "ppmod imported from PYTHONPATH"
