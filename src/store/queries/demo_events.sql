SELECT entity, entity_id, op, changed_fields FROM change_events
             WHERE sync_run_id = ?1 ORDER BY event_id
