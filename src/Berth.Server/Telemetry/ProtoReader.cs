using System.Buffers.Binary;
using System.Text;

namespace Berth.Server.Telemetry;

/// <summary>A minimal protobuf wire-format reader (varint, fixed32/64, length-delimited), enough to walk OTLP messages
/// field by field. Unknown fields are skipped, as protobuf requires, so newer senders stay readable.</summary>
internal ref struct ProtoReader(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _pos;

    public int Field { get; private set; }

    public int WireType { get; private set; }

    /// <summary>Moves to the next field; false at the end.</summary>
    public bool Next()
    {
        if (_pos >= _data.Length)
        {
            return false;
        }

        var tag = ReadVarint();
        Field = (int)(tag >> 3);
        WireType = (int)(tag & 7);
        if (Field == 0)
        {
            throw new InvalidDataException("field number 0 is not valid protobuf");
        }

        return true;
    }

    public ulong ReadVarint()
    {
        ulong result = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (_pos >= _data.Length)
            {
                throw new InvalidDataException("truncated varint");
            }

            var b = _data[_pos++];
            result |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80)
            {
                return result;
            }
        }

        throw new InvalidDataException("varint longer than 10 bytes");
    }

    public ulong ReadFixed64()
    {
        var v = BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
        return v;
    }

    public uint ReadFixed32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    public double ReadDouble() => BitConverter.UInt64BitsToDouble(ReadFixed64());

    public ReadOnlySpan<byte> ReadBytes()
    {
        var length = ReadVarint();
        if (length > int.MaxValue)
        {
            throw new InvalidDataException("length-delimited field too long");
        }

        return Take((int)length);
    }

    public string ReadString() => Encoding.UTF8.GetString(ReadBytes());

    /// <summary>Skips the current field's value whatever its wire type.</summary>
    public void Skip()
    {
        switch (WireType)
        {
            case 0:
                ReadVarint();
                break;
            case 1:
                Take(8);
                break;
            case 2:
                ReadBytes();
                break;
            case 5:
                Take(4);
                break;
            default:
                throw new InvalidDataException($"unsupported wire type {WireType} (field {Field})");
        }
    }

    private ReadOnlySpan<byte> Take(int n)
    {
        if (_pos + n > _data.Length)
        {
            throw new InvalidDataException($"truncated message: field {Field} needs {n} bytes, {_data.Length - _pos} left");
        }

        var s = _data.Slice(_pos, n);
        _pos += n;
        return s;
    }
}
