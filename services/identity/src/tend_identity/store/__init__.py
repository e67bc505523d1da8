"""Data access: hand-written SQL with bound parameters, one module per group of tables. Functions take a connection
and run inside the caller's transaction; they decide nothing."""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow

Connection = psycopg.Connection[TupleRow]
