"""How the shipped models were made: the openly licensed corpus (`corpus`), the training recipe (`train`)
and putting the results into assets/ with their model card (`ship`).

    python -m model.training.corpus build --out data/corpus
    python -m model.training.train entropy|blt|baseline
    python -m model.training.ship
"""
