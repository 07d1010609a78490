SELECT id FROM entity_history WHERE entity = 'user_rate'
         GROUP BY id ORDER BY count(*) DESC, id LIMIT 1
