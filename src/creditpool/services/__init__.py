"""Services: one module per capability; each public function is one transaction.

They are the only place business rules live. Interfaces parse input, call one function and
render its result. Amounts here are integers of micro-credits.
"""
