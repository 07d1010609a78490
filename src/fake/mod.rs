//! The built-in fake Focus API. PLACEHOLDER so the crate compiles; replaced by the fake work.
#![allow(missing_docs, clippy::all, unused)]

#[derive(Clone, Default)]
pub struct FakeOptions {
    pub users: usize,
    pub seed: u64,
    pub organization_id: i64,
    pub workspace_id: i64,
    pub per_page_cap: usize,
    pub token: String,
    pub email: String,
    pub password: String,
}
pub struct FakeServer;
#[derive(Clone)]
pub struct FakeHandle;
pub struct Named {
    pub name: String,
}
impl FakeServer {
    pub async fn start(_: FakeOptions, _: std::net::SocketAddr) -> std::io::Result<FakeServer> {
        todo!()
    }
    pub fn start_background(_: FakeOptions) -> std::io::Result<FakeServer> {
        todo!()
    }
    pub fn base_url(&self) -> String {
        todo!()
    }
    pub fn handle(&self) -> FakeHandle {
        todo!()
    }
}
impl FakeHandle {
    pub fn user_ids(&self) -> Vec<i64> {
        todo!()
    }
    pub fn group_ids(&self) -> Vec<i64> {
        todo!()
    }
    pub fn group_members(&self, _: i64) -> Vec<i64> {
        todo!()
    }
    pub fn user(&self, _: i64) -> Option<Named> {
        todo!()
    }
    pub fn group(&self, _: i64) -> Option<Named> {
        todo!()
    }
    pub fn rename_group(&self, _: i64, _: &str) {
        todo!()
    }
    pub fn leave_group(&self, _: i64, _: i64) {
        todo!()
    }
    pub fn join_group(&self, _: i64, _: i64) {
        todo!()
    }
    pub fn set_rate(&self, _: i64, _: Option<f64>, _: &str) {
        todo!()
    }
    pub fn remove_user(&self, _: i64) -> bool {
        todo!()
    }
    pub fn add_user(&self, _: &str, _: &str) -> i64 {
        todo!()
    }
}
pub async fn serve_cli(_: std::net::SocketAddr, _: FakeOptions) -> anyhow::Result<()> {
    todo!()
}
