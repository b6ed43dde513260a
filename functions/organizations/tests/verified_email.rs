//! Invitations are matched on the token's verified email address (issue 9 item 4): listing,
//! counting, accepting and declining need a JWT whose `email_verified` claim is `true` (403
//! otherwise), and a user whose token now names the invitee's address without verifying it
//! cannot take the invitation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cove_testkit::api::{Api, Call};
use cove_testkit::jwt::{Claims, TEST_SECRET};
use cove_testkit::{Harness, InProcess, org};
use serde_json::{Value, json};

const INVITEE: &str = "invitee@corp.test";
const MESSAGE: &str =
    "A verified email address is required (the token's email_verified claim must be true)";

fn api(h: &Harness) -> InProcess {
    h.api().route("/...", |env, req| async move {
        organizations::handle(&env, req).await
    })
}

fn token(sub: &str, email: &str, verified: Option<bool>) -> String {
    let mut c = Claims::bare(sub).email(email).name(sub);
    if let Some(v) = verified {
        c = c.email_verified(v);
    }
    c.sign(TEST_SECRET)
}

/// An organization of `owner` with a pending invitation to [`INVITEE`]; its ids.
async fn invited(api: &InProcess, owner: &str) -> (String, String) {
    let team = org::create_org(api, owner, "team").await;
    let body = json!({"email": INVITEE, "role": "member"});
    let path = format!("/api/organizations/{team}/invitations");
    let inv = api
        .send(Call::post(path).token(owner).json(&body))
        .await
        .expect(201, "invite");
    (team, inv["id"].as_str().unwrap().to_owned())
}

/// The four invitee routes for invitation `id`, as `token`.
async fn invitee_routes(api: &InProcess, token: &str, id: &str) -> Vec<(String, u16, Value)> {
    let calls = [
        Call::get("/api/organizations/invitations"),
        Call::get("/api/organizations/invitations/count"),
        Call::post(format!("/api/organizations/invitations/{id}/decline")),
        Call::post(format!("/api/organizations/invitations/{id}/accept")),
    ];
    let mut out = Vec::new();
    for c in calls {
        let what = format!("{} {}", c.method, c.path);
        let r = api.send(c.token(token)).await;
        out.push((what, r.status, r.json()));
    }
    out
}

async fn pending(api: &InProcess, owner: &str, team: &str) -> usize {
    let path = format!("/api/organizations/{team}/invitations");
    let list = api
        .send(Call::get(path).token(owner))
        .await
        .expect(200, "list invitations");
    list.as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn an_unverified_email_gets_no_invitation() {
    let h = Harness::new().await;
    let api = api(&h);
    let owner = h.jwt("owner");
    let (team, id) = invited(&api, &owner).await;
    for verified in [None, Some(false)] {
        let t = token("invitee", INVITEE, verified);
        for (what, status, body) in invitee_routes(&api, &t, &id).await {
            assert_eq!(
                (status, body["message"].as_str()),
                (403, Some(MESSAGE)),
                "{what} with email_verified {verified:?}: {body}"
            );
        }
    }
    // A user whose token now names the invitee's address, unverified, cannot take it.
    let bob = h.jwt("bob");
    org::personal_org(&api, &bob).await;
    let changed = token("bob", INVITEE, Some(false));
    for (what, status, body) in invitee_routes(&api, &changed, &id).await {
        assert_eq!(status, 403, "{what}: {body}");
    }
    assert_eq!(pending(&api, &owner, &team).await, 1, "still pending");
    let members = format!("/api/organizations/{team}/users");
    let list = api
        .send(Call::get(members).token(&owner))
        .await
        .expect(200, "members");
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "only the owner: {list}"
    );
}

#[tokio::test]
async fn a_verified_email_lists_and_accepts() {
    let h = Harness::new().await;
    let api = api(&h);
    let owner = h.jwt("owner");
    let (team, id) = invited(&api, &owner).await;
    // Another verified address sees nothing and cannot accept.
    let other = token("other", "other@corp.test", Some(true));
    let r = api
        .send(Call::get("/api/organizations/invitations/count").token(&other))
        .await;
    assert_eq!((r.status, r.json()), (200, json!(0)));
    let accept = format!("/api/organizations/invitations/{id}/accept");
    assert_eq!(
        api.send(Call::post(&accept).token(&other)).await.status,
        404
    );

    let t = token("invitee", INVITEE, Some(true));
    let list = api
        .send(Call::get("/api/organizations/invitations").token(&t))
        .await
        .expect(200, "my invitations");
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    let r = api
        .send(Call::get("/api/organizations/invitations/count").token(&t))
        .await;
    assert_eq!((r.status, r.json()), (200, json!(1)));
    let accepted = api
        .send(Call::post(&accept).token(&t))
        .await
        .expect(200, "accept");
    assert_eq!(accepted["status"], "accepted", "{accepted}");
    let got = api
        .send(Call::get(format!("/api/organizations/{team}")).token(&t))
        .await
        .expect(200, "the invitee is a member now");
    assert_eq!(got["id"], team.as_str());
    // The address is compared case-insensitively.
    let (_, id2) = invited(&api, &h.jwt("owner2")).await;
    let upper = token("invitee", &INVITEE.to_uppercase(), Some(true));
    let path = format!("/api/organizations/invitations/{id2}/decline");
    assert_eq!(api.send(Call::post(path).token(&upper)).await.status, 200);
}
