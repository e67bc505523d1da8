"""Importing people and the organisation from student records (Tend's documented CSV formats, docs/import.md) and
from OULAD's studentInfo.csv and studentRegistration.csv. A file is applied whole or not at all."""
