//! The group writes (`group create/update/delete`) and the groups of the key's user.

use reqwest::Method;

use super::models::{Group, GroupRef, GroupWrite};
use super::transport::{Query, Request};
use super::{ApiError, Client};

impl Client {
    /// `GET /organizations/{id}/groups/me`: the groups the credentials' user belongs to.
    pub async fn my_groups(&self) -> Result<Vec<GroupRef>, ApiError> {
        let req = self.request(Method::GET, "GET", "/groups/me", Query::default(), None);
        let answer = self.send(&req).await?;
        let page = self.decode_list::<GroupRef>(&req, &answer.body)?;
        Ok(page.items.into_iter().map(|(group, _)| group).collect())
    }

    /// `POST /organizations/{id}/groups`. The page documents no 201 body, so the group
    /// is returned only when the body parses as one. Not repeated after a 5xx, timeout
    /// or connection error.
    pub async fn create_group(&self, body: &GroupWrite) -> Result<Option<Group>, ApiError> {
        let mut req = self.request(Method::POST, "POST", "/groups", Query::default(), None);
        req.body = Some(encode_body(&req, body)?);
        req.retry_failures = false;
        let answer = self.send(&req).await?;
        Ok(serde_json::from_slice::<Group>(&answer.body).ok())
    }

    /// `PUT /organizations/{id}/groups/{group_id}`. A 2xx is the write done: the updated
    /// group is returned only when the body parses as one (the mirror is refreshed from a
    /// fresh read either way, and a write that went through must not be reported failed).
    pub async fn update_group(
        &self,
        group_id: i64,
        body: &GroupWrite,
    ) -> Result<Option<Group>, ApiError> {
        let path = format!("/groups/{group_id}");
        let mut req = self.request(Method::PUT, "PUT", &path, Query::default(), None);
        req.body = Some(encode_body(&req, body)?);
        let answer = self.send(&req).await?;
        Ok(serde_json::from_slice::<Group>(&answer.body).ok())
    }

    /// `DELETE /organizations/{id}/groups/{group_id}?workspace_id=…`. Not repeated
    /// after a 5xx, timeout or connection error.
    pub async fn delete_group(&self, group_id: i64) -> Result<(), ApiError> {
        let path = format!("/groups/{group_id}");
        let mut query = Query::default();
        query.push("workspace_id", self.workspace_id);
        let mut req = self.request(Method::DELETE, "DELETE", &path, query, None);
        req.retry_failures = false;
        self.send(&req).await.map(|_| ())
    }
}

fn encode_body(req: &Request, body: &GroupWrite) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(body).map_err(|e| ApiError::Decode {
        endpoint: req.endpoint(),
        message: format!("cannot encode the request body: {e}"),
    })
}
