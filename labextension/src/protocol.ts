/**
 * Types of the nbagent kernel <-> frontend protocol, version 1 (docs/protocol.md).
 *
 * The kernel opens the events comm (`nbagent.events`) and only sends on it; the
 * frontend opens the control comm (`nbagent.control`) on its own subshell and only
 * sends on it. Every message carries `"v": 1` and a `"type"`.
 */

export const PROTOCOL_VERSION = 1;
export const EVENTS_TARGET = 'nbagent.events';
export const CONTROL_TARGET = 'nbagent.control';

/* ----------------------------- loop events ----------------------------- */

export type ToolCall = { id: string; name: string; input: { [key: string]: unknown } };

/** A Messages API content block inside a tool result (text and image blocks). */
export type ContentBlock = {
  type: string;
  text?: string;
  source?: { type: string; media_type?: string; data?: string };
};

export type ToolOutput = {
  content: string | ContentBlock[];
  is_error: boolean;
  summary: string;
};

export type TurnStartEvent = { type: 'turn_start'; prompt: string };
export type TextDeltaEvent = { type: 'text_delta'; text: string };
export type ThinkingDeltaEvent = { type: 'thinking_delta'; text: string };
export type ToolCallStartEvent = { type: 'tool_call_start'; id: string; name: string };
export type ToolInputDeltaEvent = { type: 'tool_input_delta'; id: string; partial_json: string };
export type ToolCallEvent = { type: 'tool_call'; call: ToolCall };
export type ToolResultEvent = {
  type: 'tool_result';
  call: ToolCall;
  output: ToolOutput;
  elapsed: number;
};
export type ApprovalRequestEvent = { type: 'approval_request'; call: ToolCall; category: string };
export type NoticeEvent = {
  type: 'notice';
  text: string;
  level: 'info' | 'warning';
  attachments: string[];
};
export type UsageEvent = {
  type: 'usage';
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cost_usd: number;
  model: string;
};
export type ErrorEvent = { type: 'error'; message: string };
export type TurnEndEvent = { type: 'turn_end'; stop_reason: string; message: string };

export type AgentEvent =
  | TurnStartEvent
  | TextDeltaEvent
  | ThinkingDeltaEvent
  | ToolCallStartEvent
  | ToolInputDeltaEvent
  | ToolCallEvent
  | ToolResultEvent
  | ApprovalRequestEvent
  | NoticeEvent
  | UsageEvent
  | ErrorEvent
  | TurnEndEvent;

export type TurnSource = 'cell' | 'sidebar';

/* -------------------------- kernel -> frontend -------------------------- */

export type HelloMsg = { v: number; type: 'hello'; kernel_id?: string; nbagent?: string };

export type AgentEventMsg = {
  v: number;
  type: 'agent_event';
  turn_id: string;
  source: TurnSource;
  event: AgentEvent;
};

export type UsageTotals = Partial<Omit<UsageEvent, 'type'>>;

export type StateMsg = { v: number; type: 'state'; busy: boolean; usage?: UsageTotals };

export type ReadNotebookArgs = Record<string, never>;
export type InsertCellArgs = {
  source: string;
  cell_type?: string;
  after_cell_id: string | null;
};
export type EditCellArgs = { cell_id: string; source: string; expected_hash: string };
export type DeleteCellArgs = { cell_id: string; expected_hash: string };
export type SetOutputsArgs = {
  cell_id: string;
  outputs: unknown[];
  execution_count?: number | null;
};

export type RequestOp =
  'read_notebook' | 'insert_cell' | 'edit_cell' | 'delete_cell' | 'set_outputs';

export type RequestMsg = {
  v: number;
  type: 'request';
  id: string;
  client_id: string;
  op: RequestOp | string;
  args: { [key: string]: unknown };
};

export type KernelMsg = HelloMsg | AgentEventMsg | StateMsg | RequestMsg;

/* -------------------------- frontend -> kernel -------------------------- */

export type RegisterMsg = {
  v: number;
  type: 'register';
  client_id: string;
  path: string;
  subshell_id: string | null;
};
export type PathChangedMsg = { v: number; type: 'path_changed'; client_id: string; path: string };
export type ReplyOk = { v: number; type: 'reply'; id: string; ok: true; result: unknown };
export type ErrorCode = 'conflict' | 'not_found' | 'bad_request' | 'unknown_op' | 'internal';
export type ReplyError = {
  v: number;
  type: 'reply';
  id: string;
  ok: false;
  error: ErrorCode;
  message: string;
};
export type Decision = 'allow' | 'always' | 'deny';
export type ApprovalMsg = { v: number; type: 'approval'; call_id: string; decision: Decision };
export type StopMsg = { v: number; type: 'stop' };

export type ControlMsg =
  RegisterMsg | PathChangedMsg | ReplyOk | ReplyError | ApprovalMsg | StopMsg;

/* ------------------------------ validation ------------------------------ */

function isObject(value: unknown): value is { [key: string]: unknown } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Narrow comm data to a kernel message, or null for anything this frontend does not
 * understand (another protocol version, an unknown type).
 */
export function parseKernelMsg(data: unknown): KernelMsg | null {
  if (!isObject(data) || data.v !== PROTOCOL_VERSION || typeof data.type !== 'string') {
    return null;
  }
  switch (data.type) {
    case 'hello':
      return data as HelloMsg;
    case 'agent_event':
      return typeof data.turn_id === 'string' &&
        isObject(data.event) &&
        typeof data.event.type === 'string'
        ? (data as AgentEventMsg)
        : null;
    case 'state':
      return data as StateMsg;
    case 'request':
      return typeof data.id === 'string' && typeof data.op === 'string'
        ? ({ ...data, args: isObject(data.args) ? data.args : {} } as RequestMsg)
        : null;
    default:
      return null;
  }
}
