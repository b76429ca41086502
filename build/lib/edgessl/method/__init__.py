"""ReSSL: the relational loss, the queue, the EMA teacher and the batch-norm tricks around it."""
