"""The matching core: domain models, storage, indexes, ranking and services.

Never imports Flask: the portal, the CLI and the evaluation all call in here.
"""
