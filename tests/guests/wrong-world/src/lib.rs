//! A well-behaved filter: loading it as a `balancer:` must fail at startup.

wit_bindgen::generate!({ path: "../../../wit", world: "filter" });


struct PassThrough;

impl Guest for PassThrough {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn on_request(_req: &Request) -> Action {
        Action::Continue(Vec::new())
    }

    fn on_response(_req: &Request, _resp: &Response) -> Action {
        Action::Continue(Vec::new())
    }
}

export!(PassThrough);
