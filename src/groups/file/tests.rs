//! Groups as code: the file, the plan and the export, without a server.

use super::*;

fn org() -> LiveOrg {
    let groups = vec![
        LiveGroup {
            id: 1,
            name: "Platform".into(),
            emoji: Some("🚀".into()),
            members: [10, 11].into(),
            workspaces: [2001].into(),
        },
        LiveGroup {
            id: 2,
            name: "Sales \"EU\"\u{7f}".into(),
            emoji: None,
            members: [12].into(),
            workspaces: [2001].into(),
        },
    ];
    let mut org = LiveOrg {
        groups,
        ..LiveOrg::default()
    };
    for (id, email) in [
        (10, "ann@example.com"),
        (11, "bob@example.com"),
        (13, "dup@example.com"),
        (14, "DUP@example.com"),
    ] {
        org.user_ids.insert(id);
        org.emails.entry(email.to_lowercase()).or_default().push(id);
        org.labels.users.insert(id, email.into());
    }
    org.user_ids.insert(12);
    org.labels.workspaces.insert(2001, "Main workspace".into());
    org.workspace_names
        .insert("Main workspace".into(), [2001].into());
    org
}

fn parse(text: &str) -> Result<GroupsFile, GroupsFileError> {
    GroupsFile::parse(text, Path::new("groups.toml"))
}

#[test]
fn export_then_plan_is_empty() {
    let org = org();
    let text = export_text(&org);
    let file = parse(&text).expect(&text);
    assert_eq!(plan(&file, &org, 2001).expect("plan"), vec![], "{text}");
}

#[test]
fn plan_creates_updates_and_prunes_in_order() {
    let org = org();
    let file = parse(
        "prune = true\n[[group]]\nname = \"Platform\"\nmembers = [\"ANN@example.com\", 12]\n\
         [[group]]\nname = \"New\"\nemoji = \"x\"\nmembers = [\"bob@example.com\"]\nworkspaces = [\"Main workspace\"]\n",
    )
    .expect("parses");
    let actions = plan(&file, &org, 2001).expect("plan");
    let lines: Vec<String> = actions.iter().map(|a| a.line(&org.labels)).collect();
    assert_eq!(
        lines,
        vec![
            "+ create \"New\" emoji: x; members: bob@example.com; workspaces: Main workspace"
                .to_string(),
            "~ update \"Platform\" (id 1): +member 12, -member bob@example.com".to_string(),
            "- delete \"Sales \\\"EU\\\"\\u{7f}\" (id 2, 1 members)".to_string(),
        ]
    );
}

#[test]
fn unknown_and_ambiguous_emails_are_named() {
    let org = org();
    let e = plan(
        &parse("[[group]]\nname = \"X\"\nmembers = [\"nobody@example.com\"]\n").expect("p"),
        &org,
        1,
    )
    .expect_err("unknown");
    assert!(
        e.to_string()
            .contains("unknown member e-mail \"nobody@example.com\""),
        "{}",
        e.to_string()
    );
    let e = plan(
        &parse("[[group]]\nname = \"X\"\nmembers = [\"dup@example.com\"]\n").expect("p"),
        &org,
        1,
    )
    .expect_err("ambiguous");
    assert!(
        e.to_string().contains("ambiguous") && e.to_string().contains("13, 14"),
        "{}",
        e.to_string()
    );
}

#[test]
fn duplicate_names_are_errors() {
    assert!(parse("[[group]]\nname = \"A\"\n[[group]]\nname = \"A\"\n").is_err());
    assert!(parse("[[group]]\nname = \"A\"\nbogus = 1\n").is_err());
    let mut org = org();
    let mut twin = org.groups[0].clone();
    twin.id = 9;
    org.groups.push(twin);
    let e = plan(
        &parse("[[group]]\nname = \"Platform\"\n").expect("p"),
        &org,
        1,
    )
    .expect_err("dup");
    assert!(e.to_string().contains("ids 1, 9"), "{}", e.to_string());
}

#[test]
fn groups_of_the_same_name_are_told_apart_by_id() {
    let mut org = org();
    let mut twin = org.groups[0].clone();
    twin.id = 9;
    twin.members = [12].into();
    org.groups.push(twin);
    let text = export_text(&org);
    assert!(
        text.contains("id = 1\nname = \"Platform\"") && text.contains("id = 9\n"),
        "{text}"
    );
    assert!(text.contains("id = 2\n"), "every group has its id: {text}");
    let file = parse(&text).expect(&text);
    assert_eq!(plan(&file, &org, 2001).expect("plan"), vec![], "{text}");

    // The id picks the group; the name is what it should be called.
    let file = parse("prune = true\n[[group]]\nid = 9\nname = \"Platform 2\"\n").expect("p");
    let lines: Vec<String> = plan(&file, &org, 2001)
        .expect("plan")
        .iter()
        .map(|a| a.line(&org.labels))
        .collect();
    assert_eq!(
        lines,
        vec![
            "~ update \"Platform\" (id 9): name \"Platform\" -> \"Platform 2\"".to_string(),
            "- delete \"Platform\" (id 1, 2 members)".to_string(),
            "- delete \"Sales \\\"EU\\\"\\u{7f}\" (id 2, 1 members)".to_string(),
        ]
    );
}

#[test]
fn ids_in_the_file_are_checked() {
    let org = org();
    let e = parse("[[group]]\nid = 1\nname = \"A\"\n[[group]]\nid = 1\nname = \"B\"\n")
        .expect_err("id twice");
    assert!(
        e.to_string().contains("group id 1 is given twice"),
        "{}",
        e.to_string()
    );
    let e = parse("[[group]]\nid = 1\nname = \"A\"\n[[group]]\nname = \"A\"\n")
        .expect_err("a repeated name without its id");
    assert!(
        e.to_string().contains("\"A\" is named twice"),
        "{}",
        e.to_string()
    );
    let e = plan(
        &parse("[[group]]\nid = 77\nname = \"A\"\n").expect("p"),
        &org,
        1,
    )
    .expect_err("unknown id");
    assert!(
        e.to_string()
            .contains("id 77 is not a group of the organization"),
        "{}",
        e.to_string()
    );
    // One group described twice: by its id and by its (current) name.
    let e = plan(
        &parse("[[group]]\nid = 1\nname = \"Renamed\"\n[[group]]\nname = \"Platform\"\n")
            .expect("p"),
        &org,
        1,
    )
    .expect_err("described twice");
    assert!(
        e.to_string().contains("both describe group 1"),
        "{}",
        e.to_string()
    );
}
