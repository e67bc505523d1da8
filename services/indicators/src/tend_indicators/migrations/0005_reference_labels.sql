-- Names a person can read in flag sentences: a module run's label ("CS101 Programming, 2026/27") and an assignment's
-- title ("Coursework 1"). Course facts, not personal data. Optional: sentences fall back to a neutral form.
ALTER TABLE module_runs ADD COLUMN label text;
ALTER TABLE assignments ADD COLUMN title text;
