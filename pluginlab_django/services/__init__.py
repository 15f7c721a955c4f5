"""Actions with side effects on both sides: the remote first, then the ORM,
so a remote failure leaves local rows as they were. One module per domain."""
