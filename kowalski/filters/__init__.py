"""What the API, the broker and notebooks share about running filters: the document a filter
sees (Kowalski's upstream pipeline, ``inputs``) and the selection and evaluation of a backtest
over archived alerts (``backtest``). The engine itself is ``mql``."""
