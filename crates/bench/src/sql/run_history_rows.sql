SELECT (SELECT count(*) FROM entity_history WHERE opened_by = ?1) + (SELECT count(*) FROM entity_history WHERE closed_by = ?1)
