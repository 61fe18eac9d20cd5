/**
 * Notebook operations the kernel asks for, applied to the open notebook's shared model.
 *
 * Cells are addressed by id. Edits and deletions carry the SHA-256 of the source the
 * agent last read; if the user changed the cell since, nothing is touched and the
 * kernel gets a `conflict`. Every change happens inside one `transact`, so it is a
 * single undoable step and the user's unsaved edits elsewhere survive. Nothing here
 * writes the file: the notebook just becomes dirty, and the user saves it.
 */

import type { ISharedCell, ISharedCodeCell, ISharedNotebook } from '@jupyter/ydoc';
import type * as nbformat from '@jupyterlab/nbformat';
import type { PartialJSONValue } from '@lumino/coreutils';

import type {
  CellType,
  EmptyResult,
  ErrorCode,
  InsertCellResult,
  NbOutput,
  ReadNotebookResult,
  ReplyResult
} from './protocol';
import { sha256Hex } from './sha256';

export class OpError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string
  ) {
    super(message);
  }
}

const CELL_TYPES = new Set(['code', 'markdown', 'raw']);
const HASH_RE = /^[0-9a-f]{64}$/;

function isCode(cell: ISharedCell): cell is ISharedCodeCell {
  return cell.cell_type === 'code';
}

function str(args: { [key: string]: unknown }, key: string): string {
  const value = args[key];
  if (typeof value !== 'string') {
    throw new OpError('bad_request', `"${key}" must be a string`);
  }
  return value;
}

function findCell(nb: ISharedNotebook, cellId: string): { cell: ISharedCell; index: number } {
  const index = nb.cells.findIndex(c => c.id === cellId);
  if (index < 0) {
    throw new OpError('not_found', `no cell with id ${cellId}`);
  }
  return { cell: nb.cells[index], index };
}

/**
 * Find a cell, check its source hash, then call `apply` in the same synchronous
 * step as the final check, so no edit can slip in between check and change.
 */
async function withCheckedCell(
  nb: ISharedNotebook,
  args: { [key: string]: unknown },
  apply: (cell: ISharedCell, index: number) => void
): Promise<void> {
  const cellId = str(args, 'cell_id');
  const expected = str(args, 'expected_hash').toLowerCase();
  if (!HASH_RE.test(expected)) {
    throw new OpError('bad_request', '"expected_hash" must be a SHA-256 hex digest');
  }
  // Hashing is async; retry if the cell changed while it ran.
  for (let attempt = 0; attempt < 5; attempt++) {
    const { cell } = findCell(nb, cellId);
    const snapshot = cell.getSource();
    const actual = await sha256Hex(snapshot);
    const now = findCell(nb, cellId);
    if (now.cell !== cell || cell.getSource() !== snapshot) {
      continue;
    }
    if (actual !== expected) {
      throw new OpError(
        'conflict',
        `cell ${cellId} changed since it was read (source hash ${actual.slice(0, 12)}…); read it again`
      );
    }
    apply(cell, now.index);
    return;
  }
  throw new OpError('conflict', `cell ${cellId} is being edited; read it again`);
}

export function readNotebook(nb: ISharedNotebook, path: string): ReadNotebookResult {
  return {
    path,
    cells: nb.cells.map(cell => ({
      id: cell.id,
      cell_type: cell.cell_type as CellType,
      source: cell.getSource(),
      execution_count: isCode(cell) ? cell.execution_count : null,
      // Stored outputs are of the four nbformat kinds the protocol names.
      outputs: isCode(cell) ? (cell.getOutputs() as NbOutput[]) : [],
      metadata: { ...cell.getMetadata() }
    }))
  };
}

export function insertCell(
  nb: ISharedNotebook,
  args: { [key: string]: unknown }
): InsertCellResult {
  const source = str(args, 'source');
  const cellType =
    args.cell_type === undefined || args.cell_type === null ? 'code' : str(args, 'cell_type');
  if (!CELL_TYPES.has(cellType)) {
    throw new OpError('bad_request', `unknown cell_type ${cellType}`);
  }
  const after = args.after_cell_id;
  let index = 0;
  if (after !== null && after !== undefined) {
    if (typeof after !== 'string') {
      throw new OpError('bad_request', '"after_cell_id" must be a string or null');
    }
    index = findCell(nb, after).index + 1;
  }
  let cellId = '';
  nb.transact(() => {
    cellId = nb.insertCell(index, { cell_type: cellType, source }).id;
  });
  return { cell_id: cellId, index };
}

export async function editCell(
  nb: ISharedNotebook,
  args: { [key: string]: unknown }
): Promise<EmptyResult> {
  const source = str(args, 'source');
  await withCheckedCell(nb, args, cell => {
    nb.transact(() => cell.setSource(source));
  });
  return {};
}

export async function deleteCell(
  nb: ISharedNotebook,
  args: { [key: string]: unknown }
): Promise<EmptyResult> {
  await withCheckedCell(nb, args, (_cell, index) => {
    nb.transact(() => nb.deleteCell(index));
  });
  return {};
}

function isOutput(value: unknown): value is nbformat.IOutput {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { output_type?: unknown }).output_type === 'string'
  );
}

/**
 * Set one top-level key of the notebook's metadata (nbagent's own keys only: the
 * kernel has no business with the kernelspec or anyone else's metadata).
 */
export function setNotebookMetadata(
  nb: ISharedNotebook,
  args: { [key: string]: unknown }
): EmptyResult {
  const key = str(args, 'key');
  if (!key.startsWith('nbagent')) {
    throw new OpError('bad_request', `metadata key ${key} is not nbagent's`);
  }
  if (!('value' in args) || args.value === undefined) {
    throw new OpError('bad_request', '"value" is missing');
  }
  const value = args.value as PartialJSONValue;
  nb.transact(() => nb.setMetadata(key, value));
  return {};
}

export function setOutputs(nb: ISharedNotebook, args: { [key: string]: unknown }): EmptyResult {
  const { cell } = findCell(nb, str(args, 'cell_id'));
  if (!isCode(cell)) {
    throw new OpError(
      'bad_request',
      `cell ${cell.id} is a ${cell.cell_type} cell; only code cells have outputs`
    );
  }
  const outputs = args.outputs;
  if (!Array.isArray(outputs) || !outputs.every(isOutput)) {
    throw new OpError('bad_request', '"outputs" must be a list of nbformat outputs');
  }
  const count = args.execution_count;
  if (count !== undefined && count !== null && typeof count !== 'number') {
    throw new OpError('bad_request', '"execution_count" must be a number or null');
  }
  nb.transact(() => {
    cell.setOutputs(outputs);
    if (count !== undefined) {
      cell.execution_count = count;
    }
  });
  return {};
}

/** Run one request op; throws OpError for anything the kernel should hear about. */
export async function applyOp(
  nb: ISharedNotebook,
  path: string,
  op: string,
  args: { [key: string]: unknown }
): Promise<ReplyResult> {
  switch (op) {
    case 'read_notebook':
      return readNotebook(nb, path);
    case 'insert_cell':
      return insertCell(nb, args);
    case 'edit_cell':
      return editCell(nb, args);
    case 'delete_cell':
      return deleteCell(nb, args);
    case 'set_outputs':
      return setOutputs(nb, args);
    case 'set_notebook_metadata':
      return setNotebookMetadata(nb, args);
    default:
      throw new OpError('unknown_op', `unknown op ${op}`);
  }
}
