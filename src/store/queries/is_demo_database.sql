SELECT NOT EXISTS (SELECT 1 FROM users)
                 OR EXISTS (SELECT 1 FROM users WHERE organization_user_id = ?1 AND email = ?2)
