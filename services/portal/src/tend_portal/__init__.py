"""Tend's portal: the staff and student web front. It holds no data; identity and checkin answer every question."""
