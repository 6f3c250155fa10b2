//! An XML push (official accounts, mini programs by default) read into [`Fields`] in one
//! pass of quick-xml's event reader.

use super::{Fields, ParseError, SubscribeItem};

/// `v` without surrounding blanks, `None` if nothing is left; a value with none to trim is
/// kept as it is (a 2.7 KB `Encrypt` is not copied again).
fn trimmed(v: Option<String>) -> Option<String> {
    let mut s = v?;
    let t = s.trim();
    if t.is_empty() {
        None
    } else if t.len() == s.len() {
        Some(s)
    } else if s.starts_with(t) {
        s.truncate(t.len());
        Some(s)
    } else {
        Some(t.to_string())
    }
}

/// Which field an element's text goes to.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Slot {
    ToUserName,
    FromUserName,
    CreateTime,
    MsgType,
    Event,
    EventKey,
    MsgId,
    MsgIdUpper,
    Status,
    Encrypt,
    TemplateId,
    SubscribeStatus,
    PopupScene,
    ItemMsgId,
    ErrorCode,
    ErrorStatus,
    /// An element wxpush does not read (its text is skipped).
    #[default]
    Other,
}

fn top_slot(name: &str) -> Slot {
    match name {
        "ToUserName" => Slot::ToUserName,
        "FromUserName" => Slot::FromUserName,
        "CreateTime" => Slot::CreateTime,
        "MsgType" => Slot::MsgType,
        "Event" => Slot::Event,
        "EventKey" => Slot::EventKey,
        "MsgId" => Slot::MsgId,
        "MsgID" => Slot::MsgIdUpper,
        "Status" => Slot::Status,
        "Encrypt" => Slot::Encrypt,
        _ => Slot::Other,
    }
}

fn item_slot(name: &str) -> Slot {
    match name {
        "TemplateId" => Slot::TemplateId,
        "SubscribeStatusString" => Slot::SubscribeStatus,
        "PopupScene" => Slot::PopupScene,
        "MsgID" => Slot::ItemMsgId,
        "ErrorCode" => Slot::ErrorCode,
        "ErrorStatus" => Slot::ErrorStatus,
        _ => Slot::Other,
    }
}

/// The raw fields of an XML push, as read.
#[derive(Default)]
struct XmlBody {
    to_user_name: Option<String>,
    from_user_name: Option<String>,
    create_time: Option<String>,
    msg_type: Option<String>,
    event: Option<String>,
    event_key: Option<String>,
    msg_id: Option<String>,
    msg_id_upper: Option<String>,
    status: Option<String>,
    encrypt: Option<String>,
    items: Vec<XmlItem>,
}

#[derive(Default)]
struct XmlItem {
    template_id: Option<String>,
    status: Option<String>,
    popup_scene: Option<String>,
    msg_id: Option<String>,
    error_code: Option<String>,
    error_status: Option<String>,
}

impl XmlBody {
    fn set(&mut self, slot: Slot, text: String) {
        let target = match slot {
            Slot::ToUserName => &mut self.to_user_name,
            Slot::FromUserName => &mut self.from_user_name,
            Slot::CreateTime => &mut self.create_time,
            Slot::MsgType => &mut self.msg_type,
            Slot::Event => &mut self.event,
            Slot::EventKey => &mut self.event_key,
            Slot::MsgId => &mut self.msg_id,
            Slot::MsgIdUpper => &mut self.msg_id_upper,
            Slot::Status => &mut self.status,
            Slot::Encrypt => &mut self.encrypt,
            Slot::Other => return,
            item_slot => {
                let Some(item) = self.items.last_mut() else {
                    return;
                };
                match item_slot {
                    Slot::TemplateId => &mut item.template_id,
                    Slot::SubscribeStatus => &mut item.status,
                    Slot::PopupScene => &mut item.popup_scene,
                    Slot::ItemMsgId => &mut item.msg_id,
                    Slot::ErrorCode => &mut item.error_code,
                    _ => &mut item.error_status,
                }
            }
        };
        *target = Some(text);
    }
}

/// Where the one pass of [`read_xml`] is: the open elements, the field whose text is being
/// read, and what was read so far.
#[derive(Default)]
struct XmlCursor {
    /// The open elements: 1 = the root, 2 = a field or an event list, 3 = `List`, 4 = its field.
    depth: usize,
    in_event_list: bool,
    slot: Slot,
    text: String,
    seen_root: bool,
    body: XmlBody,
}

fn invalid(e: &dyn std::fmt::Display) -> ParseError {
    ParseError(format!("invalid XML: {e}"))
}

impl XmlCursor {
    /// Whether the text at this point goes to a field.
    fn reading(&self) -> bool {
        self.slot != Slot::Other
    }

    /// An element opens: the root, a field, an event list, a `List` entry or its field.
    fn start(&mut self, name: &str) -> Result<(), ParseError> {
        self.depth += 1;
        match self.depth {
            1 if self.seen_root => return Err(invalid(&"more than one root element")),
            1 => self.seen_root = true,
            2 => {
                self.in_event_list = matches!(
                    name,
                    "SubscribeMsgPopupEvent" | "SubscribeMsgChangeEvent" | "SubscribeMsgSentEvent"
                );
                self.slot = if self.in_event_list {
                    Slot::Other
                } else {
                    top_slot(name)
                };
            }
            3 if self.in_event_list && name == "List" => self.body.items.push(XmlItem::default()),
            4 if self.in_event_list => self.slot = item_slot(name),
            _ => self.slot = Slot::Other,
        }
        self.text.clear();
        Ok(())
    }

    /// An empty element at the top: the root (`<xml/>`), once.
    fn empty_root(&mut self) -> Result<(), ParseError> {
        if self.seen_root {
            return Err(invalid(&"more than one root element"));
        }
        self.seen_root = true;
        Ok(())
    }

    /// A character reference or a predefined entity in a field's text, expanded; any other
    /// entity is an error.
    fn reference(&mut self, r: &quick_xml::events::BytesRef<'_>) -> Result<(), ParseError> {
        if r.is_char_ref() {
            match r.resolve_char_ref().map_err(|e| invalid(&e))? {
                Some(c) => self.text.push(c),
                None => return Err(invalid(&"a character reference to nothing")),
            }
        } else {
            let name = r.borrow().into_inner();
            match quick_xml::escape::resolve_predefined_entity(&name) {
                Some(v) => self.text.push_str(v),
                None => return Err(invalid(&format!("unknown entity &{name};"))),
            }
        }
        Ok(())
    }

    /// An element closes: a field's text is stored.
    fn end(&mut self) {
        if (self.depth == 2 || self.depth == 4) && self.reading() {
            self.body.set(self.slot, std::mem::take(&mut self.text));
        }
        self.slot = Slot::Other;
        if self.depth == 2 {
            self.in_event_list = false;
        }
        self.depth = self.depth.saturating_sub(1);
    }
}

/// One pass of quick-xml's event reader over the body, borrowing the text (a 2 KB `Content`
/// is scanned, never copied): the root's children, and the `List` items of the three
/// subscribe-message events. Only the five predefined entities and character references are
/// expanded; a DTD is refused, so entity bombs are parse errors.
fn read_xml(body: &str) -> Result<XmlBody, ParseError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut at = XmlCursor::default();
    // Bounded by the body: every turn consumes at least one event of it.
    loop {
        match reader.read_event().map_err(|e| invalid(&e))? {
            Event::Start(e) => at.start(e.name().as_ref())?,
            Event::Empty(_) if at.depth == 0 => at.empty_root()?,
            Event::Text(t) if at.reading() => at.text.push_str(&t.xml10_content()),
            Event::CData(c) if at.reading() => at.text.push_str(&c.xml10_content()),
            Event::GeneralRef(r) if at.reading() => at.reference(&r)?,
            Event::GeneralRef(r)
                if !r.is_char_ref()
                    && quick_xml::escape::resolve_predefined_entity(&r.borrow().into_inner())
                        .is_none() =>
            {
                return Err(invalid(&"unknown entity"));
            }
            Event::End(_) => at.end(),
            Event::DocType(_) => return Err(invalid(&"a DTD is not allowed")),
            Event::Eof => break,
            _ => {}
        }
    }
    if at.depth != 0 || !at.seen_root {
        return Err(invalid(&"the document ends inside an element"));
    }
    Ok(at.body)
}

/// The fields of an XML push.
pub(super) fn parse_xml(body: &str) -> Result<Fields, ParseError> {
    let x = read_xml(body)?;
    let create_time = match trimmed(x.create_time) {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| ParseError("CreateTime is not an integer".into()))?,
        ),
    };
    // Community report: some change events arrive wrapped as SubscribeMsgPopupEvent; all three are read alike.
    let items = x
        .items
        .into_iter()
        .map(|i| SubscribeItem {
            template_id: i.template_id.unwrap_or_default(),
            status: trimmed(i.status),
            popup_scene: trimmed(i.popup_scene),
            msg_id: trimmed(i.msg_id),
            error_code: trimmed(i.error_code).and_then(|c| c.parse().ok()),
            error_status: trimmed(i.error_status),
        })
        .collect();
    Ok(Fields {
        to_user_name: trimmed(x.to_user_name),
        from_user_name: trimmed(x.from_user_name),
        create_time,
        msg_type: trimmed(x.msg_type),
        event: trimmed(x.event),
        event_key: x.event_key.map(|k| k.trim().to_string()),
        msg_id: trimmed(x.msg_id).or(trimmed(x.msg_id_upper)),
        status: trimmed(x.status),
        encrypt: trimmed(x.encrypt),
        subscribe_items: items,
    })
}
