-- Staff numbers from the university's HR system: what the data protection officer's audit search (FindPerson) looks
-- members of staff up by. Optional, since not every import carries them; unique when present; staff only.
ALTER TABLE people ADD COLUMN staff_number text UNIQUE;
ALTER TABLE people ADD CONSTRAINT people_staff_number_only_for_staff CHECK (kind = 'staff' OR staff_number IS NULL);
