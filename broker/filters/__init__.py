"""The broker's filter step: users' filters (``mql`` pipelines) run on every stored alert.

``inputs`` builds what a filter sees (the alert and its history restricted to the filter's data
rights), ``runner`` runs the active filters on each stored batch and writes the outbox, ``backtest``
replays a filter over the archive, ``bench`` measures the engine, ``cli`` is ``kowalski filters``.
"""
