//! The HTTP routes: every RPC's `google.api.http` rule, read from the served
//! descriptor set at start-up (the protos are the only definition). Also
//! compiled into `build.rs`, whose OpenAPI document is made from the same
//! routes.

use prost_reflect::{DescriptorPool, MessageDescriptor, MethodDescriptor, Value};

use super::template::{Binding, Template};

/// Where an RPC's HTTP body goes in its request message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRule {
    /// No body: every field not in the path comes from the query string.
    None,
    /// `body: "*"`: every field not in the path comes from the body.
    Whole,
    /// `body: "product"`: that top-level field is the body, the rest of the
    /// fields not in the path come from the query string.
    Field(String),
}

/// One HTTP binding of one RPC.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: http::Method,
    pub template: Template,
    pub body: BodyRule,
    pub rpc: MethodDescriptor,
    /// `/producthub.v1.ProductService/GetProduct`.
    pub grpc_path: String,
}

impl Route {
    pub fn input(&self) -> MessageDescriptor {
        self.rpc.input()
    }

    pub fn output(&self) -> MessageDescriptor {
        self.rpc.output()
    }

    pub fn streams(&self) -> bool {
        self.rpc.is_server_streaming()
    }
}

/// What a path and method found.
pub enum Found<'a> {
    Route(&'a Route, Vec<Binding>),
    /// The path is served, but not for this method: these are.
    OtherMethods(Vec<http::Method>),
    Nothing,
}

#[derive(Debug, Clone)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Every rule of every service in `pool`, additional bindings included.
    pub fn from_pool(pool: &DescriptorPool) -> Result<Self, String> {
        let Some(http) = pool.get_extension_by_name("google.api.http") else {
            return Err("the descriptor set has no google.api.http extension".into());
        };
        let mut routes = Vec::new();
        for service in pool.services() {
            for rpc in service.methods() {
                let options = rpc.options();
                if !options.has_extension(&http) {
                    continue;
                }
                let Value::Message(rule) = options.get_extension(&http).into_owned() else {
                    continue;
                };
                let grpc_path = format!("/{}/{}", service.full_name(), rpc.name());
                let mut rules = vec![rule.clone()];
                if let Some(Value::List(more)) = rule.get_field_by_name("additional_bindings").map(|v| v.into_owned()) {
                    rules.extend(more.into_iter().filter_map(|v| match v {
                        Value::Message(m) => Some(m),
                        _ => None,
                    }));
                }
                for rule in rules {
                    routes.push(route(&rpc, &grpc_path, &rule)?);
                }
            }
        }
        Ok(Self { routes })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    pub fn find(&self, method: &http::Method, path: &str) -> Found<'_> {
        let mut others = Vec::new();
        for route in self.iter() {
            if let Some(bindings) = route.template.matches(path) {
                if route.method == *method {
                    return Found::Route(route, bindings);
                }
                others.push(route.method.clone());
            }
        }
        if others.is_empty() {
            Found::Nothing
        } else {
            Found::OtherMethods(others)
        }
    }
}

fn route(rpc: &MethodDescriptor, grpc_path: &str, rule: &prost_reflect::DynamicMessage) -> Result<Route, String> {
    let text = |field: &str| match rule.get_field_by_name(field).map(|v| v.into_owned()) {
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    let mut pattern = None;
    for (field, method) in [
        ("get", http::Method::GET),
        ("put", http::Method::PUT),
        ("post", http::Method::POST),
        ("delete", http::Method::DELETE),
        ("patch", http::Method::PATCH),
    ] {
        if rule.has_field_by_name(field) {
            pattern = Some((method, text(field)));
        }
    }
    if rule.has_field_by_name("custom")
        && let Some(Value::Message(custom)) = rule.get_field_by_name("custom").map(|v| v.into_owned())
    {
        let kind = match custom.get_field_by_name("kind").map(|v| v.into_owned()) {
            Some(Value::String(kind)) => kind,
            _ => String::new(),
        };
        let path = match custom.get_field_by_name("path").map(|v| v.into_owned()) {
            Some(Value::String(path)) => path,
            _ => String::new(),
        };
        let method = http::Method::from_bytes(kind.as_bytes()).map_err(|e| format!("{}: {e}", rpc.full_name()))?;
        pattern = Some((method, path));
    }
    let Some((method, path)) = pattern else {
        return Err(format!("{}: an HTTP rule without a method", rpc.full_name()));
    };
    let template = Template::parse(&path)?;
    let input = rpc.input();
    for variable in template.variables() {
        if field_path(&input, variable).is_none() {
            return Err(format!(
                "{}: {path} binds {}, not a field",
                rpc.full_name(),
                variable.join(".")
            ));
        }
    }
    let body = match text("body").as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::Whole,
        field if input.get_field_by_name(field).is_some() => BodyRule::Field(field.to_string()),
        field => return Err(format!("{}: the body {field} is not a field", rpc.full_name())),
    };
    Ok(Route {
        method,
        template,
        body,
        rpc: rpc.clone(),
        grpc_path: grpc_path.to_string(),
    })
}

/// The field a dotted proto path names, if every step is a singular message.
pub fn field_path(message: &MessageDescriptor, path: &[String]) -> Option<prost_reflect::FieldDescriptor> {
    let (last, parents) = path.split_last()?;
    let mut message = message.clone();
    for name in parents {
        let field = message.get_field_by_name(name)?;
        match field.kind() {
            prost_reflect::Kind::Message(inner) if !field.is_list() && !field.is_map() => message = inner,
            _ => return None,
        }
    }
    message.get_field_by_name(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        Routes::from_pool(&super::super::pool()).unwrap()
    }

    #[test]
    fn every_rpc_of_both_services_has_a_route() {
        let routes = routes();
        let pool = super::super::pool();
        for service in ["producthub.v1.ProductService", "google.longrunning.Operations"] {
            for rpc in pool.get_service_by_name(service).unwrap().methods() {
                assert!(
                    routes.iter().any(|r| r.rpc == rpc),
                    "{} has no google.api.http rule",
                    rpc.full_name()
                );
            }
        }
    }

    #[test]
    fn paths_find_their_rpc() {
        let routes = routes();
        let found = |method: http::Method, path: &str| match routes.find(&method, path) {
            Found::Route(route, _) => route.rpc.name().to_string(),
            Found::OtherMethods(_) => "other".into(),
            Found::Nothing => "nothing".into(),
        };
        assert_eq!(found(http::Method::GET, "/v1/products/a"), "GetProduct");
        assert_eq!(found(http::Method::PATCH, "/v1/products/a"), "UpdateProduct");
        assert_eq!(found(http::Method::GET, "/v1/products"), "ListProducts");
        assert_eq!(found(http::Method::POST, "/v1/products"), "CreateProduct");
        assert_eq!(found(http::Method::POST, "/v1/products/a:sync"), "SyncProduct");
        assert_eq!(found(http::Method::GET, "/v1/products:watch"), "WatchProducts");
        assert_eq!(found(http::Method::POST, "/v1/operations/x:cancel"), "CancelOperation");
        assert_eq!(found(http::Method::PUT, "/v1/products/a"), "other");
        assert_eq!(found(http::Method::GET, "/v2/products"), "nothing");
    }
}
